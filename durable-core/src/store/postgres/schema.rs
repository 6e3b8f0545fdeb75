//! The PostgreSQL schema: its versioned migrations, and the statements the store runs.
//!
//! Every table lives in the store's own schema (`durable` by default), so several stores (or
//! test runs) can share one database without seeing each other. Statements are written with a
//! `{s}` placeholder for the quoted schema name and formatted once, when the store connects.

use deadpool_postgres::GenericClient;

use super::pg;
use crate::store::StoreError;

/// The migrations, in order: migration `i` (from 0) brings the schema to version `i + 1`.
///
/// Never edit a released migration: add a new one. Timestamps are milliseconds since the Unix
/// epoch in `BIGINT` columns (exactly the store's `Timestamp`, which `timestamptz` is not).
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes and understands.
pub(super) const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

const V1: &str = "
CREATE TABLE {s}.executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    snapshot_point TEXT,
    snapshot_fingerprint TEXT,
    snapshot_state TEXT,
    output TEXT,
    wake_at BIGINT,
    step_point TEXT,
    step_attempt BIGINT,
    step_started BOOLEAN,
    step_retry_at BIGINT,
    waiting_for TEXT,
    version BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    next_inbox_seq BIGINT NOT NULL DEFAULT 1,
    last_history_seq BIGINT NOT NULL DEFAULT 0
);
-- Claiming scans only unfinished executions, which stay few while finished ones pile up.
CREATE INDEX executions_due ON {s}.executions (status, wake_at) WHERE status IN ('running', 'suspended');
CREATE INDEX executions_created ON {s}.executions (created_at, id);
CREATE INDEX executions_workflow ON {s}.executions (workflow, created_at, id);
CREATE TABLE {s}.history (
    execution_id TEXT NOT NULL REFERENCES {s}.executions (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    point TEXT,
    file TEXT,
    line BIGINT,
    attempt BIGINT,
    detail TEXT,
    state TEXT,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE {s}.inbox (
    execution_id TEXT NOT NULL REFERENCES {s}.executions (id),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE INDEX inbox_name ON {s}.inbox (execution_id, name);
";

/// Workflow registrations: one row per workflow build; `registered` orders them.
const V2: &str = "
CREATE SEQUENCE {s}.workflow_registrations;
CREATE TABLE {s}.workflows (
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    facts TEXT NOT NULL,
    registered BIGINT NOT NULL,
    PRIMARY KEY (name, fingerprint)
);
CREATE INDEX workflows_latest ON {s}.workflows (name, registered);
";

/// The epoch of each execution's last claim, which fences out a run that lost its lease; and
/// the idempotency keys of sent events, kept after the event is consumed so that a repeated
/// send is recognized for the execution's whole life.
const V3: &str = "
ALTER TABLE {s}.executions ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE {s}.history ADD COLUMN error_kind TEXT;
ALTER TABLE {s}.history ADD COLUMN worker TEXT;
CREATE TABLE {s}.event_keys (
    execution_id TEXT NOT NULL REFERENCES {s}.executions (id),
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (execution_id, key)
);
";

/// The parent of a child workflow, which its end is reported to and which lists its children.
const V4: &str = "
ALTER TABLE {s}.executions ADD COLUMN parent_id TEXT;
ALTER TABLE {s}.executions ADD COLUMN parent_event TEXT;
CREATE INDEX executions_parent ON {s}.executions (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE TABLE {s}.execution_keys (
    execution_id TEXT NOT NULL REFERENCES {s}.executions (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (execution_id, name)
);
CREATE INDEX execution_keys_lookup ON {s}.execution_keys (name, value, execution_id);
CREATE TABLE {s}.paused_workflows (name TEXT PRIMARY KEY);
";

/// The first key of the advisory lock that serializes migrations (the second is the schema's
/// hash): `durable` in ASCII, so it is recognizable in `pg_locks`.
const MIGRATION_LOCK: i32 = 0x6475_7261;

/// Checks a schema name: a lowercase SQL identifier (so that it needs no quoting in `psql`)
/// short enough to leave room for the notification channel's `_work` suffix.
pub(super) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 58 {
        return Ok(());
    }
    Err(StoreError::backend(format!(
        "postgres: invalid schema name `{schema}`: use 1 to 58 lowercase letters, digits and \
         underscores, not starting with a digit"
    )))
}

/// Fills the `{s}` placeholders of `template` with the quoted schema name.
pub(super) fn in_schema(template: &str, schema: &str) -> String {
    template.replace("{s}", &format!("\"{schema}\""))
}

/// The schema version recorded in `schema`, or `None` if it has no migrations table yet.
pub(super) async fn recorded_version(client: &impl GenericClient, schema: &str) -> Result<Option<i32>, StoreError> {
    let what = "read the schema version";
    let table = format!("\"{schema}\".durable_migrations");
    let row = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.map_err(pg(what))?;
    if !row.try_get::<_, bool>(0).map_err(pg(what))? {
        return Ok(None);
    }
    let query = in_schema("SELECT COALESCE(MAX(version), 0) FROM {s}.durable_migrations", schema);
    let row = client.query_one(&query, &[]).await.map_err(pg(what))?;
    let version: i32 = row.try_get(0).map_err(pg(what))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::backend(format!(
            "postgres: schema `{schema}` has version {version}, newer than this build supports \
             ({SCHEMA_VERSION}): connect with a newer version of durable"
        )));
    }
    Ok(Some(version))
}

/// Creates or upgrades the store's schema; refuses one newer than this build.
///
/// Safe to run from many workers at once: the migrations run in one transaction that first
/// takes a transaction-scoped advisory lock on the schema, so one worker migrates while the
/// others wait and then find the work done. A schema already at this build's version is only
/// read (no lock, no DDL), so workers without DDL privileges can connect to a migrated schema.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client, schema: &str) -> Result<(), StoreError> {
    if recorded_version(&*client, schema).await? == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let what = "migrate the schema";
    let tx = client.transaction().await.map_err(pg(what))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&MIGRATION_LOCK, &schema])
        .await
        .map_err(pg(what))?;
    let setup = "CREATE SCHEMA IF NOT EXISTS {s};
        CREATE TABLE IF NOT EXISTS {s}.durable_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );";
    tx.batch_execute(&in_schema(setup, schema)).await.map_err(pg(what))?;
    let current = recorded_version(&tx, schema).await?.unwrap_or(0);
    let record = in_schema("INSERT INTO {s}.durable_migrations (version) VALUES ($1)", schema);
    for (version, migration) in (1..).zip(MIGRATIONS).skip(usize::try_from(current).unwrap_or(0)) {
        tx.batch_execute(&in_schema(migration, schema)).await.map_err(pg(what))?;
        tx.execute(&record, &[&version]).await.map_err(pg(what))?;
        tracing::info!(schema, version, "applied a durable schema migration");
    }
    tx.commit().await.map_err(pg(what))
}

pub(super) use crate::store::columns::RECORD_COLUMNS;

/// Every statement the store runs, formatted for its schema.
#[derive(Debug)]
pub(super) struct Queries {
    pub(super) load: String,
    pub(super) insert: String,
    pub(super) lock: String,
    pub(super) lock_many: String,
    pub(super) update_many: String,
    pub(super) append_history: String,
    pub(super) consume: String,
    pub(super) notify_due: String,
    pub(super) notify: String,
    pub(super) claim_due: String,
    pub(super) claim_due_for: String,
    pub(super) lease_many: String,
    pub(super) renew: String,
    pub(super) release: String,
    pub(super) lease_owner: String,
    pub(super) next_inbox_seq: String,
    pub(super) status: String,
    pub(super) insert_inbox: String,
    pub(super) event_key: String,
    pub(super) insert_event_key: String,
    pub(super) inbox: String,
    pub(super) history: String,
    pub(super) list: String,
    pub(super) register_workflow: String,
    pub(super) workflow: String,
    pub(super) purge_select: String,
    pub(super) purge_history: String,
    pub(super) purge_inbox: String,
    pub(super) purge_keys: String,
    pub(super) purge_business_keys: String,
    pub(super) insert_keys: String,
    pub(super) paused: String,
    pub(super) pause: String,
    pub(super) resume: String,
    pub(super) is_paused: String,
    pub(super) purge_executions: String,
}

/// When an execution became due, for [`Queries::claim_due`] (`$1` is now).
const DUE_SINCE: &str = "CASE WHEN e.status = 'running' THEN e.updated_at ELSE LEAST(
        CASE WHEN e.wake_at <= $1 THEN e.wake_at END,
        (SELECT MIN(i.at) FROM {s}.inbox i WHERE i.execution_id = e.id AND i.name = e.waiting_for)) END";

impl Queries {
    pub(super) fn new(schema: &str) -> Self {
        let q = |template: &str| in_schema(&template.replace("{columns}", RECORD_COLUMNS), schema);
        Queries {
            load: q("SELECT {columns} FROM {s}.executions WHERE id = $1"),
            insert: q("INSERT INTO {s}.executions (id, workflow, status, input, version, created_at, updated_at, \
                 last_history_seq, parent_id, parent_event) VALUES ($1, $2, 'running', $3, 1, $4, $4, 1, $5, $6) \
                 ON CONFLICT (id) DO NOTHING"),
            lock: q("SELECT {columns} FROM {s}.executions WHERE id = $1 FOR UPDATE"),
            lock_many: q("SELECT {columns}, last_history_seq FROM {s}.executions WHERE id = ANY($1) \
                 ORDER BY id FOR UPDATE"),
            update_many: q(UPDATE_MANY),
            append_history: q("INSERT INTO {s}.history (execution_id, seq, at, kind, point, file, line, attempt, \
                 detail, state, error_kind, worker) SELECT * FROM UNNEST($1::text[], $2::bigint[], \
                 $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], \
                 $10::text[], $11::text[], $12::text[])"),
            consume: q("DELETE FROM {s}.inbox i USING UNNEST($1::text[], $2::bigint[]) AS c (id, seq) \
                 WHERE i.execution_id = c.id AND i.seq = c.seq"),
            notify_due: q("SELECT pg_notify($1, CASE WHEN octet_length(c.id) < 7000 THEN c.id ELSE '' END) \
                 FROM UNNEST($2::text[], $3::text[], $4::bool[]) AS c (id, waiting_for, due) \
                 WHERE c.due OR EXISTS (SELECT 1 FROM {s}.inbox i \
                     WHERE i.execution_id = c.id AND i.name = c.waiting_for)"),
            notify: q("SELECT pg_notify($1, CASE WHEN octet_length($2) < 7000 THEN $2 ELSE '' END)"),
            claim_due: q(&claim_query("")),
            claim_due_for: q(&claim_query(
                "AND EXISTS (SELECT 1 FROM UNNEST($3::text[], $4::text[]) AS l (name, layout) \
                 WHERE l.name = e.workflow AND (e.snapshot_fingerprint IS NULL OR l.layout = e.snapshot_fingerprint))",
            )),
            lease_many: q("UPDATE {s}.executions SET lease_owner = $2, lease_until = $3, \
                 lease_epoch = lease_epoch + 1 WHERE id = ANY($1) RETURNING id, lease_epoch"),
            renew: q("UPDATE {s}.executions SET lease_until = $4 WHERE id = $1 AND lease_owner = $2 \
                 AND lease_epoch = $3 RETURNING 1"),
            release: q("UPDATE {s}.executions SET lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND (lease_owner IS NULL OR (lease_owner = $2 AND lease_epoch = $3)) \
                 RETURNING status"),
            lease_owner: q("SELECT lease_owner FROM {s}.executions WHERE id = $1"),
            next_inbox_seq: q("UPDATE {s}.executions SET next_inbox_seq = next_inbox_seq + 1 \
                 WHERE id = $1 AND status IN ('running', 'suspended') \
                 RETURNING next_inbox_seq - 1, status, waiting_for"),
            status: q("SELECT status FROM {s}.executions WHERE id = $1"),
            insert_inbox: q("INSERT INTO {s}.inbox (execution_id, seq, name, payload, at) VALUES ($1, $2, $3, $4, $5)"),
            event_key: q("SELECT seq FROM {s}.event_keys WHERE execution_id = $1 AND key = $2"),
            insert_event_key: q("INSERT INTO {s}.event_keys (execution_id, key, seq) VALUES ($1, $2, $3)"),
            inbox: q("SELECT i.seq, i.name, i.payload, i.at FROM {s}.executions e \
                 LEFT JOIN {s}.inbox i ON i.execution_id = e.id WHERE e.id = $1 ORDER BY i.seq"),
            history: q("SELECT h.seq, h.at, h.kind, h.point, h.file, h.line, h.attempt, h.detail, h.state, \
                 h.error_kind, h.worker \
                 FROM {s}.executions e LEFT JOIN {s}.history h ON h.execution_id = e.id \
                 WHERE e.id = $1 ORDER BY h.seq"),
            list: q("SELECT {columns} FROM {s}.executions WHERE ($1::text IS NULL OR workflow = $1) \
                 AND ($2::text IS NULL OR status = $2) AND ($4::text IS NULL OR parent_id = $4) \
                 AND ($5::text IS NULL OR id IN (SELECT execution_id FROM {s}.execution_keys \
                     WHERE name = $5 AND value = $6)) \
                 ORDER BY created_at, id LIMIT $3"),
            register_workflow: q("INSERT INTO {s}.workflows (name, fingerprint, facts, registered) \
                 VALUES ($1, $2, $3, nextval('{s}.workflow_registrations')) ON CONFLICT (name, fingerprint) \
                 DO UPDATE SET facts = EXCLUDED.facts, registered = EXCLUDED.registered"),
            workflow: q("SELECT name, fingerprint, facts FROM {s}.workflows WHERE name = $1 \
                 AND ($2::text IS NULL OR fingerprint = $2) ORDER BY registered DESC LIMIT 1"),
            // Locks the batch; an execution another transaction holds (a reopen) is passed over.
            purge_select: q("SELECT id FROM {s}.executions WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND ($1::text IS NULL OR status = $1) AND updated_at < $2 AND ($3::text IS NULL OR workflow = $3) \
                 ORDER BY updated_at, id LIMIT $4 FOR UPDATE SKIP LOCKED"),
            purge_history: q("DELETE FROM {s}.history WHERE execution_id = ANY($1)"),
            purge_inbox: q("DELETE FROM {s}.inbox WHERE execution_id = ANY($1)"),
            purge_keys: q("DELETE FROM {s}.event_keys WHERE execution_id = ANY($1)"),
            purge_business_keys: q("DELETE FROM {s}.execution_keys WHERE execution_id = ANY($1)"),
            insert_keys: q("INSERT INTO {s}.execution_keys (execution_id, name, value) \
                 SELECT $1, k.name, k.value FROM UNNEST($2::text[], $3::text[]) AS k (name, value) \
                 ON CONFLICT DO NOTHING"),
            paused: q("SELECT name FROM {s}.paused_workflows ORDER BY name"),
            pause: q("INSERT INTO {s}.paused_workflows (name) VALUES ($1) ON CONFLICT DO NOTHING"),
            resume: q("DELETE FROM {s}.paused_workflows WHERE name = $1"),
            is_paused: q("SELECT 1 FROM {s}.paused_workflows WHERE name = $1"),
            purge_executions: q("DELETE FROM {s}.executions WHERE id = ANY($1)"),
        }
    }
}

/// The claim of due executions, with `also` (more conditions on `e`) in its `WHERE`.
fn claim_query(also: &str) -> String {
    format!(
        "SELECT {{columns}} FROM {{s}}.executions e \
         WHERE e.status IN ('running', 'suspended') \
           AND (e.lease_until IS NULL OR e.lease_until <= $1) \
           AND (e.status = 'running' OR e.wake_at <= $1 OR EXISTS (SELECT 1 FROM {{s}}.inbox i \
               WHERE i.execution_id = e.id AND i.name = e.waiting_for)) \
           AND NOT EXISTS (SELECT 1 FROM {{s}}.paused_workflows p WHERE p.name = e.workflow) {also} \
         ORDER BY {DUE_SINCE}, e.id LIMIT $2 FOR UPDATE OF e SKIP LOCKED"
    )
}

/// Overwrites every mutable column of many executions at once (one row per id in the arrays).
const UPDATE_MANY: &str = "UPDATE {s}.executions e SET status = u.status, snapshot_point = u.snapshot_point, \
    snapshot_fingerprint = u.snapshot_fingerprint, snapshot_state = u.snapshot_state, output = u.output, \
    wake_at = u.wake_at, step_point = u.step_point, step_attempt = u.step_attempt, \
    step_started = u.step_started, step_retry_at = u.step_retry_at, waiting_for = u.waiting_for, \
    version = u.version, lease_owner = u.lease_owner, lease_until = u.lease_until, \
    updated_at = u.updated_at, last_history_seq = u.last_history_seq
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
        $8::text[], $9::bigint[], $10::bool[], $11::bigint[], $12::text[], $13::bigint[], $14::text[], \
        $15::bigint[], $16::bigint[], $17::bigint[]) \
    AS u (id, status, snapshot_point, snapshot_fingerprint, snapshot_state, output, wake_at, step_point, \
        step_attempt, step_started, step_retry_at, waiting_for, version, lease_owner, lease_until, updated_at, \
        last_history_seq) \
    WHERE e.id = u.id";
