-- Events whose handlers keep failing: how often they ran, when to try again, the last reason, and
-- when they were set aside as dead (after server.handler_max_attempts runs) until ops re-drive or
-- discard them.
alter table inbox add column attempts integer not null default 0;
alter table inbox add column retry_at bigint;
alter table inbox add column dead_at bigint;
alter table inbox add column last_error text;
