/**
 * JSON schemas of the HTTP API. Fastify validates requests against them (Ajv) and serialises
 * responses with them; @fastify/swagger turns them into the OpenAPI document at `/openapi.json`.
 * Durations are integers in ms here (the CLI is where `30s` is accepted).
 */

const name = { type: 'string', minLength: 1, maxLength: 512 } as const;
const nullableInt = { type: ['integer', 'null'] } as const;

export const errorSchema = {
  $id: 'RotaError',
  type: 'object',
  description: 'Every error: a stable `ROTA_*` code and a message for people.',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', example: 'ROTA_INVALID_ARGUMENT' },
    message: { type: 'string' },
    detail: { type: 'object', additionalProperties: true },
  },
} as const;

const errorRef = { $ref: 'RotaError#' } as const;

/** Error responses every route may give. */
export const errors = {
  400: errorRef,
  401: errorRef,
  404: errorRef,
  409: errorRef,
  413: errorRef,
  500: errorRef,
  503: errorRef,
} as const;

const taskObject = {
  type: 'object',
  description: 'A task as stored (see docs/tasks.md); instants are store-time epoch ms.',
  required: ['id', 'queue', 'state'],
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    queue: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'claimed', 'running', 'completed', 'resolving'] },
    outcome: { type: ['string', 'null'], enum: ['succeeded', 'failed', 'cancelled', null] },
    priority: { type: 'integer' },
    attempt: { type: 'integer' },
    maxAttempts: { type: 'integer' },
    owner: { type: ['string', 'null'] },
    runAt: { type: 'integer' },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
    completedAt: nullableInt,
  },
} as const;

const taskRef = {
  type: 'object',
  required: ['id', 'queue', 'status'],
  properties: {
    id: { type: 'string' },
    queue: { type: 'string' },
    status: { type: 'string', enum: ['created', 'deduplicated', 'replaced'] },
    deduplicated: { type: 'boolean' },
    replaced: { type: 'boolean' },
  },
} as const;

/** Options of one task (the body of `POST /api/tasks`, each item of `/api/tasks/batch`). */
const taskOptionProps = {
  payload: { description: 'Any JSON value (default null).' },
  id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' },
  priority: {
    type: 'integer',
    minimum: -2147483648,
    maximum: 2147483647,
    description: 'Higher runs first. Default 0.',
  },
  delay: { type: 'integer', minimum: 0, description: 'ms after store now. Default 0.' },
  runAt: { type: 'integer', minimum: 0, description: 'Epoch ms (store time); wins over delay.' },
  maxAttempts: { type: 'integer', minimum: 1, description: 'Default: queue config, else 3.' },
  timeout: { type: ['integer', 'null'], minimum: 1, description: 'ms per attempt. Default 900 000.' },
  claimTimeout: { type: ['integer', 'null'], minimum: 1 },
  deadLetter: { type: ['string', 'null'], minLength: 1, maxLength: 512 },
  tags: { type: 'array', items: name, maxItems: 64 },
  annotation: { type: 'string', maxLength: 4096 },
  dedupKey: name,
} as const;

const schedule = {
  type: 'object',
  description: 'A schedule (see docs/schedules.md `ScheduleInfo`).',
  required: ['name', 'state'],
  additionalProperties: true,
  properties: {
    name: { type: 'string' },
    state: { type: 'string', enum: ['active', 'paused', 'exhausted'] },
    nextRunAt: nullableInt,
    runsStarted: { type: 'integer' },
  },
} as const;

const run = {
  type: 'object',
  description: 'A run record (see docs/schedules.md `RunInfo`).',
  required: ['name', 'runId', 'status'],
  additionalProperties: true,
  properties: {
    name: { type: 'string' },
    runId: { type: 'string' },
    slotAt: { type: 'integer' },
    kind: { type: 'string' },
    status: { type: 'string' },
    startedAt: nullableInt,
    endedAt: nullableInt,
  },
} as const;

const poolJob = {
  type: 'object',
  required: ['key', 'state', 'workerId', 'nodeId'],
  properties: {
    key: { type: 'string' },
    state: { type: 'string', enum: ['active', 'stopping', 'failed'] },
    createdAt: { type: 'integer' },
    dispatchedBy: { type: 'string' },
    requeued: { type: 'boolean' },
    workerId: { type: ['string', 'null'] },
    nodeId: { type: ['string', 'null'] },
    ownerState: { type: ['string', 'null'] },
    token: nullableInt,
  },
} as const;

const nameParam = (field: string) =>
  ({ type: 'object', required: [field], properties: { [field]: name } }) as const;

const member = {
  type: 'object',
  required: ['nodeId'],
  additionalProperties: true,
  properties: {
    nodeId: { type: 'string' },
    hostname: { type: 'string' },
    pid: { type: 'integer' },
    startedAt: { type: 'integer' },
  },
} as const;

export const routes = {
  status: {
    tags: ['cluster'],
    summary: 'Members, election leaders and host decisions',
    response: {
      200: {
        type: 'object',
        required: ['node', 'namespace', 'now', 'members', 'leaders', 'hosts'],
        properties: {
          node: { type: 'string' },
          namespace: { type: 'string' },
          now: { type: 'integer' },
          members: { type: 'array', items: member },
          leaders: {
            type: 'array',
            items: {
              type: 'object',
              required: ['name', 'nodeId', 'token'],
              properties: {
                name: { type: 'string' },
                nodeId: { type: 'string' },
                token: { type: 'integer' },
                since: { type: 'integer' },
                candidates: { type: 'integer' },
              },
            },
          },
          hosts: {
            type: 'array',
            items: {
              type: 'object',
              required: ['namespace', 'hosts'],
              properties: {
                namespace: { type: 'string' },
                hosts: { type: 'array', items: { type: 'string' } },
                leader: { type: ['string', 'null'] },
                decidedAt: nullableInt,
              },
            },
          },
        },
      },
      ...errors,
    },
  },
  locks: {
    tags: ['cluster'],
    summary: 'Held locks',
    response: {
      200: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'nodeId', 'token'],
          properties: {
            name: { type: 'string' },
            nodeId: { type: 'string' },
            token: { type: 'integer' },
            value: {},
            waiting: { type: 'integer' },
          },
        },
      },
      ...errors,
    },
  },
  listTasks: {
    tags: ['tasks'],
    summary: 'List tasks (enqueue order), one page',
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: {
        queue: name,
        state: { type: 'string', enum: ['pending', 'claimed', 'running', 'completed', 'resolving'] },
        limit: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
        cursor: { type: 'integer', minimum: 0 },
      },
    },
    response: {
      200: {
        type: 'object',
        required: ['tasks', 'cursor'],
        properties: { tasks: { type: 'array', items: taskObject }, cursor: nullableInt },
      },
      ...errors,
    },
  },
  counts: {
    tags: ['tasks'],
    summary: 'Task counts by queue and state',
    querystring: { type: 'object', additionalProperties: false, properties: { queue: name } },
    response: {
      200: {
        type: 'object',
        additionalProperties: {
          type: 'object',
          additionalProperties: { type: 'integer' },
        },
      },
      ...errors,
    },
  },
  addTask: {
    tags: ['tasks'],
    summary: 'Enqueue one task',
    body: {
      type: 'object',
      additionalProperties: false,
      required: ['queue'],
      properties: { queue: name, ...taskOptionProps },
    },
    response: { 201: taskRef, ...errors },
  },
  addTasks: {
    tags: ['tasks'],
    summary: 'Enqueue many tasks, all or nothing',
    body: {
      type: 'object',
      additionalProperties: false,
      required: ['queue', 'items'],
      properties: {
        queue: name,
        items: {
          type: 'array',
          minItems: 1,
          maxItems: 100000,
          items: { type: 'object', additionalProperties: false, properties: taskOptionProps },
        },
      },
    },
    response: { 201: { type: 'array', items: taskRef }, ...errors },
  },
  getTask: {
    tags: ['tasks'],
    summary: 'One task',
    params: nameParam('id'),
    response: { 200: taskObject, ...errors },
  },
  cancelTask: {
    tags: ['tasks'],
    summary: 'Cancel a pending, claimed or running task',
    params: nameParam('id'),
    body: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { reason: { type: 'string', maxLength: 1024 } },
    },
    response: { 200: taskObject, ...errors },
  },
  retryTask: {
    tags: ['tasks'],
    summary: 'Run a failed or cancelled task again as a new task rt-<id>-<n>',
    params: nameParam('id'),
    response: { 201: taskRef, ...errors },
  },
  redrive: {
    tags: ['tasks'],
    summary: 'Move dead-letter copies back into their original queues',
    params: nameParam('queue'),
    body: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { limit: { type: 'integer', minimum: 1, maximum: 1000000 } },
    },
    response: {
      200: { type: 'object', required: ['redriven'], properties: { redriven: { type: 'integer' } } },
      ...errors,
    },
  },
  listSchedules: {
    tags: ['schedules'],
    summary: 'Every schedule',
    response: { 200: { type: 'array', items: schedule }, ...errors },
  },
  getSchedule: {
    tags: ['schedules'],
    summary: 'One schedule',
    params: nameParam('name'),
    response: { 200: schedule, ...errors },
  },
  scheduleAction: {
    tags: ['schedules'],
    summary: 'Pause or resume a schedule',
    params: nameParam('name'),
    response: { 200: schedule, ...errors },
  },
  runNow: {
    tags: ['schedules'],
    summary: 'Request one manual run now (taken by a node with the handler)',
    params: nameParam('name'),
    response: { 202: run, ...errors },
  },
  history: {
    tags: ['schedules'],
    summary: 'Run records, newest first',
    params: nameParam('name'),
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: { limit: { type: 'integer', minimum: 1, maximum: 10000 } },
    },
    response: { 200: { type: 'array', items: run }, ...errors },
  },
  pools: {
    tags: ['pool'],
    summary: 'Pools that live members run jobs of',
    response: { 200: { type: 'array', items: { type: 'string' } }, ...errors },
  },
  poolJobs: {
    tags: ['pool'],
    summary: 'Jobs of a pool with their owners',
    params: nameParam('pool'),
    response: { 200: { type: 'array', items: poolJob }, ...errors },
  },
  poolWorkers: {
    tags: ['pool'],
    summary: 'Workers of a pool with the keys they run',
    params: nameParam('pool'),
    response: {
      200: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'nodeId', 'state', 'jobs'],
          properties: {
            id: { type: 'string' },
            nodeId: { type: 'string' },
            createdAt: { type: 'integer' },
            state: { type: 'string', enum: ['active', 'draining'] },
            jobs: { type: 'array', items: { type: 'string' } },
          },
        },
      },
      ...errors,
    },
  },
  dispatch: {
    tags: ['pool'],
    summary: 'Dispatch a job',
    params: nameParam('pool'),
    body: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: {
        key: name,
        payload: { type: ['string', 'null'], description: 'UTF-8 text; null for none.' },
        wait: { type: 'boolean', description: 'Resolve once a worker started it. Default false.' },
        timeout: { type: 'integer', minimum: 1, description: 'With wait: ms. Default 2 × ackGracePeriod.' },
      },
    },
    response: { 201: poolJob, ...errors },
  },
  stopJob: {
    tags: ['pool'],
    summary: 'Stop a job and wait until it stopped',
    params: {
      type: 'object',
      required: ['pool', 'key'],
      properties: { pool: name, key: name },
    },
    response: {
      200: { type: 'object', required: ['stopped'], properties: { stopped: { type: 'boolean' } } },
      ...errors,
    },
  },
} as const;
