-- Events whose handlers keep failing: how often they ran, when to try again, the last reason, and
-- when they were set aside as dead (after server.handler_max_attempts runs) until ops re-drive or
-- discard them.
alter table inbox
    add column attempts bigint not null default 0,
    add column retry_at bigint,
    add column dead_at bigint,
    add column last_error text;
alter table inbox alter column last_error set statistics 0;
