-- Recall plans created through the API (next to those in the configuration): the plan as JSON.
create table recall_plans (
    id text primary key,
    config text not null,
    updated_at bigint not null
);
