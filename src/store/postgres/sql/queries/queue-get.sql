SELECT to_jsonb(i) AS item FROM items i WHERE i.id = $1 AND i.state <> 'deleted'
