SELECT i.* FROM items i WHERE i.id = $1 AND i.state <> 'deleted'
