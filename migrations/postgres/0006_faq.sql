-- FAQ knowledge base (问答库), questions nobody could answer, pending "您是不是想问" choices and
-- per-group answer settings.

create table faq_entries (
    id bigint generated always as identity primary key,
    -- The id an import file gives the entry: re-importing the file updates instead of duplicating.
    external_id text unique,
    question text not null,
    -- JSON arrays of strings.
    similar_questions text not null default '[]',
    keywords text not null default '[]',
    answer text not null,
    category text,
    enabled boolean not null default true,
    hit_count bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null
);

create table faq_unanswered (
    id bigint generated always as identity primary key,
    scope text not null,
    -- The first wording seen; similar later questions only raise the count.
    question text not null,
    asked bigint not null default 1,
    first_at bigint not null,
    last_at bigint not null,
    -- open, resolved (turned into an entry or a similar question) or ignored.
    status text not null default 'open',
    entry_id bigint
);
create index faq_unanswered_open on faq_unanswered (scope, status, last_at);

create table faq_pending_choices (
    scope text not null,
    user_id text not null,
    -- '' for a one-to-one chat.
    group_id text not null,
    -- JSON array of entry ids offered as 1, 2, 3.
    entry_ids text not null,
    created_at bigint not null,
    primary key (scope, user_id, group_id)
);

create table faq_groups (
    scope text not null,
    group_id text not null,
    auto_answer boolean not null,
    last_answer_at bigint not null default 0,
    primary key (scope, group_id)
);

-- Bumped by every change to an entry, so that servers notice changes made elsewhere (another
-- replica, the import command) even within the same millisecond.
create table faq_revision (
    id integer primary key check (id = 1),
    revision bigint not null
);
insert into faq_revision (id, revision) values (1, 0);

-- Questions answered and left unanswered per local day, for /stats and the dashboard.
create table faq_daily (
    scope text not null,
    day integer not null,
    answered bigint not null default 0,
    unanswered bigint not null default 0,
    primary key (scope, day)
);
