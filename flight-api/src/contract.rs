//! The Flight contract v1: every JSON body that crosses the wire.
//!
//! These types are shared by the node (which parses them) and the Rust client (which
//! produces them). pyarrow users write the same JSON by hand, so every field name here is
//! part of the public contract documented in `docs/protocol.md`: rename nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of this contract, exchanged in the Flight `Handshake`: the client sends it as
/// `HandshakeRequest.protocol_version`, the node answers with its own in
/// `HandshakeResponse.protocol_version` (plus a [`HandshakeInfo`] JSON payload). A node
/// refuses a client of another nonzero version with `FAILED_PRECONDITION`; 0 means
/// "unspecified" (what plain Flight clients such as pyarrow send) and is accepted. Raise it
/// only for changes an older peer would misread.
pub const CONTRACT_VERSION: u64 = 1;

/// The JSON payload of the node's `HandshakeResponse`:
/// `{"contract_version": 1, "server_version": "0.1.0"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HandshakeInfo {
    pub contract_version: u64,
    /// The node's build (`CARGO_PKG_VERSION` of the server crate).
    pub server_version: String,
}

/// Action type names accepted by `DoAction`.
pub mod actions {
    pub const CREATE_DATABASE: &str = "create_database";
    pub const DROP_DATABASE: &str = "drop_database";
    pub const LIST_DATABASES: &str = "list_databases";
    pub const CREATE_TABLE: &str = "create_table";
    pub const DROP_TABLE: &str = "drop_table";
    pub const GET_TABLE: &str = "get_table";
    pub const LIST_TABLES: &str = "list_tables";
    pub const ALTER_TABLE: &str = "alter_table";
    pub const CREATE_PARTITION: &str = "create_partition";
    pub const DROP_PARTITION: &str = "drop_partition";
    pub const LIST_PARTITIONS: &str = "list_partitions";
    pub const LIST_OFFSETS: &str = "list_offsets";
    pub const HEALTH: &str = "health";
    pub const TABLE_STATS: &str = "table_stats";

    /// Every action with a one-line description, as returned by `ListActions`.
    pub const ALL: &[(&str, &str)] = &[
        (CREATE_DATABASE, "{name, if_not_exists?, comment?} -> {created}"),
        (DROP_DATABASE, "{name, if_exists?, cascade?} -> {dropped}"),
        (LIST_DATABASES, "{} -> [name]"),
        (CREATE_TABLE, "{database, table, columns, primary_key?, partition_keys?, bucket_key?, bucket_num?, options?, if_not_exists?, comment?} -> table info"),
        (DROP_TABLE, "{database, table, if_exists?} -> {dropped}"),
        (GET_TABLE, "{database, table} -> table info"),
        (LIST_TABLES, "{database} -> [name]"),
        (ALTER_TABLE, "{database, table, add_columns?, set_options?} -> table info"),
        (CREATE_PARTITION, "{database, table, partition, if_not_exists?} -> {created}"),
        (DROP_PARTITION, "{database, table, partition, if_exists?} -> {dropped}"),
        (LIST_PARTITIONS, "{database, table} -> [{name, partition_id, values, created_at_ms}]"),
        (LIST_OFFSETS, "{database, table, partition?, buckets?, spec} -> [{bucket, offset}]"),
        (HEALTH, "{} -> {status, version, uptime_ms}"),
        (TABLE_STATS, "{database, table} -> {log_scans, snapshot_scans, messages_sent, rows_sent, bytes_sent}"),
    ];
}

/// Names of the columns a scan adds with `"metadata_columns": true`.
pub const BUCKET_COLUMN: &str = "_bucket";
pub const OFFSET_COLUMN: &str = "_offset";
pub const TIMESTAMP_COLUMN: &str = "_timestamp";

/// `create_database`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    pub name: String,
    #[serde(default)]
    pub if_not_exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `drop_database`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DropDatabase {
    pub name: String,
    #[serde(default)]
    pub if_exists: bool,
    /// Drop the tables inside too; without it a non-empty database is FailedPrecondition.
    #[serde(default)]
    pub cascade: bool,
}

/// A column of `create_table`, and of the table info returned by `get_table`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawColumnSpec")]
pub struct ColumnSpec {
    pub name: String,
    /// SQL type name: `BIGINT`, `STRING`, `DECIMAL(10, 2)`, `TIMESTAMP(3)`, `ARRAY<INT>`, ...
    #[serde(rename = "type")]
    pub data_type: String,
    /// Defaults to true; primary-key columns default to NOT NULL (declaring one nullable is an error).
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the JSON said `"nullable"` explicitly (not sent; the node needs it to tell an
    /// omitted `nullable` on a key column, which means NOT NULL, from a declared `true`).
    #[serde(skip)]
    pub nullable_declared: bool,
}

/// `nullable` is sent only when it was declared (or is false), so a key column built with
/// `ColumnSpec::new` is NOT NULL by the primary-key default rather than explicitly nullable.
impl Serialize for ColumnSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let send_nullable = self.nullable_declared || !self.nullable;
        let n = 2 + send_nullable as usize + self.comment.is_some() as usize;
        let mut st = serializer.serialize_struct("ColumnSpec", n)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("type", &self.data_type)?;
        if send_nullable {
            st.serialize_field("nullable", &self.nullable)?;
        }
        if let Some(c) = &self.comment {
            st.serialize_field("comment", c)?;
        }
        st.end()
    }
}

/// The wire form of [`ColumnSpec`], with `nullable` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumnSpec {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default)]
    nullable: Option<bool>,
    #[serde(default)]
    comment: Option<String>,
}

/// Equality of what a column is; how its nullability was spelled does not matter.
impl PartialEq for ColumnSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.data_type == other.data_type && self.nullable == other.nullable && self.comment == other.comment
    }
}

impl From<RawColumnSpec> for ColumnSpec {
    fn from(raw: RawColumnSpec) -> Self {
        Self {
            name: raw.name,
            data_type: raw.data_type,
            nullable: raw.nullable.unwrap_or(true),
            comment: raw.comment,
            nullable_declared: raw.nullable.is_some(),
        }
    }
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Self { name: name.into(), data_type: data_type.into(), nullable: true, comment: None, nullable_declared: false }
    }

    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self.nullable_declared = true;
        self
    }
}

/// `create_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_num: Option<u32>,
    /// Fluss-style options (`bucket.num`, `table.log.ttl`, ...); values are strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub if_not_exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `drop_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DropTable {
    pub database: String,
    pub table: String,
    #[serde(default)]
    pub if_exists: bool,
}

/// `get_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

/// `list_tables`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ListTables {
    pub database: String,
}

/// `create_partition`: a partition is named by its value, or by its values joined with `$` in
/// partition-key order when the table has several partition keys (Fluss's naming).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CreatePartition {
    pub database: String,
    pub table: String,
    pub partition: String,
    #[serde(default)]
    pub if_not_exists: bool,
}

/// `drop_partition`: removes the partition's logs and KV rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DropPartition {
    pub database: String,
    pub table: String,
    pub partition: String,
    #[serde(default)]
    pub if_exists: bool,
}

/// One partition in the answer of `list_partitions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The name used in requests (`partition`).
    pub name: String,
    pub partition_id: u64,
    /// Partition key → value.
    pub values: BTreeMap<String, String>,
    pub created_at_ms: i64,
}

/// `alter_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AlterTable {
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_columns: Vec<ColumnSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_options: BTreeMap<String, String>,
}

/// `list_offsets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListOffsets {
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// All buckets when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<u32>>,
    pub spec: OffsetSpec,
}

/// Which offset `list_offsets` resolves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OffsetSpec {
    /// The first offset still stored (moves forward with retention).
    Earliest,
    /// The high watermark: the offset the next committed record will get.
    Latest,
    /// The first offset whose commit timestamp is >= ms (the high watermark if none).
    #[serde(untagged)]
    Timestamp { timestamp: i64 },
}

/// One row of the `list_offsets` result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketOffset {
    pub bucket: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub offset: u64,
}

/// The answer of `get_table`, `create_table` and `alter_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableInfo {
    pub database: String,
    pub table: String,
    pub table_id: u64,
    pub schema_id: u32,
    /// `log` or `primary_key`.
    pub kind: String,
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub partition_keys: Vec<String>,
    #[serde(default)]
    pub bucket_key: Vec<String>,
    pub bucket_num: u32,
    /// Every option with its effective value (defaults filled in).
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub partitions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub created_at_ms: i64,
}

/// Where a log scan starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
    #[serde(untagged)]
    Offset {
        offset: u64,
    },
    #[serde(untagged)]
    Timestamp {
        timestamp: i64,
    },
}

/// Where a bounded log scan stops (exclusive).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndPosition {
    /// The high watermark at the time of the call.
    #[default]
    Latest,
    #[serde(untagged)]
    Offset { offset: u64 },
}

/// `{"scan": "log", ...}`: a log scan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LogScan {
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<u32>>,
    #[serde(default)]
    pub from: StartPosition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<EndPosition>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default)]
    pub metadata_columns: bool,
    /// Primary-key tables only, one bucket (and one partition), bounded by `to`: only the
    /// change records whose primary key (these values, in primary-key order) comes at or
    /// before this key in the node's key order. With a snapshot scan resumed by `after_key`
    /// it replays the changes of the keys the interrupted snapshot had already delivered.
    /// Batches carry `end_offset` (records are filtered out of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_upto: Option<Vec<serde_json::Value>>,
    /// Largest message wanted, roughly: an uncompressed stored batch larger than this is sent
    /// as consecutive row ranges of it, each a message of its own (0: stored batches whole;
    /// otherwise at least 65536). Absent: the node's `log.scan_message_bytes` (0 by default).
    /// Strom's own client asks for [`SCAN_MESSAGE_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_bytes: Option<u64>,
}

/// The message size Strom's own client asks scans for (`LogScan::message_bytes`). A client
/// that allocates a buffer per message reads 1 MiB messages from its caches instead of faulting
/// in tens of fresh megabytes per stored batch: with arrow-rs clients full-width scans ran
/// 1.5–1.6x and 13-of-43-column scans 1.4–1.7x an in-memory pyarrow server, against 0.8–1.4x
/// with whole batches (docs/benchmarks.md, "Scans, 2026-12-08"). pyarrow clients did not gain
/// reliably, so the node's default stays whole batches.
pub const SCAN_MESSAGE_BYTES: u64 = 1024 * 1024;

/// What a count ticket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountKind {
    /// `{"count": "log"}`: records in the log (for primary-key tables: change records).
    #[default]
    Log,
    /// `{"count": "rows"}`: rows of the current state (primary-key tables; the same as `log`
    /// for log tables).
    Rows,
}

/// `{"count": "log" | "rows", ...}`: one row with the number of records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    #[serde(skip)]
    pub kind: CountKind,
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<u32>>,
}

/// A comparison of one column with a JSON value; a filter is the AND of its predicates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub column: String,
    pub op: PredicateOp,
    /// The operand: a scalar, or an array for `in`; absent for `is_null` / `is_not_null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PredicateOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    NotEq,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    LtEq,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    GtEq,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "is_not_null")]
    IsNotNull,
}

/// `{"scan": "snapshot", ...}`: the current rows of a primary-key table, read from one
/// consistent point in time across buckets, in key order within a bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SnapshotScan {
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// The AND of these predicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<Predicate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// One bucket (and one partition) only: the rows whose primary key (these values, in
    /// primary-key order) comes after this key in the node's key order — a snapshot scan
    /// resumed after the last row an earlier one delivered (rows come in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_key: Option<Vec<serde_json::Value>>,
}

/// How a lookup matches its keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LookupKind {
    /// Keys are full primary keys; at most one row each.
    #[default]
    PrimaryKey,
    /// Keys are values of the bucket key, a strict prefix of the primary key; every row with
    /// that prefix.
    Prefix,
}

/// `{"lookup": "primary_key" | "prefix", ...}` as a DoGet ticket (JSON keys), or as the CMD
/// descriptor of a DoExchange (keys as Arrow batches; `keys` omitted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub lookup: LookupKind,
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// One array per key, values in key-column order (primary key, or the prefix columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Vec<serde_json::Value>>,
    /// Columns to return; the key columns are always returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Insert missing keys (key + auto-increment id, nulls elsewhere) and return them too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insert_if_not_exists: bool,
}

/// The first column of every DoExchange lookup result: the row of the request batch a result
/// row answers.
pub const KEY_INDEX_COLUMN: &str = "_key_index";
/// The column of changelog scans that carries each record's change type.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

/// A DoGet ticket. The JSON discriminator is the key (`scan`, `count`, `lookup`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketRequest {
    LogScan(LogScan),
    SnapshotScan(SnapshotScan),
    Count(CountRequest),
    Lookup(LookupRequest),
}

impl TicketRequest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut value = match self {
            TicketRequest::LogScan(scan) => {
                let mut v = serde_json::to_value(scan).expect("serializable");
                v["scan"] = "log".into();
                v
            }
            TicketRequest::SnapshotScan(scan) => {
                let mut v = serde_json::to_value(scan).expect("serializable");
                v["scan"] = "snapshot".into();
                v
            }
            TicketRequest::Count(count) => {
                let mut v = serde_json::to_value(count).expect("serializable");
                v["count"] = match count.kind {
                    CountKind::Log => "log",
                    CountKind::Rows => "rows",
                }
                .into();
                v
            }
            TicketRequest::Lookup(lookup) => serde_json::to_value(lookup).expect("serializable"),
        };
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        serde_json::to_vec(&value).expect("serializable")
    }

    /// Parses a ticket, naming what is wrong in the error message.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.is_empty() {
            return Err("empty ticket: expected a JSON object such as {\"scan\": \"log\", \"database\": .., \"table\": ..}".into());
        }
        let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("ticket is not valid JSON: {e}"))?;
        let map = value.as_object_mut().ok_or("ticket must be a JSON object")?;
        if let Some(kind) = map.remove("scan") {
            match kind.as_str() {
                Some("log") => {
                    serde_json::from_value(value).map(TicketRequest::LogScan).map_err(|e| format!("invalid log scan ticket: {e}"))
                }
                Some("snapshot") => {
                    serde_json::from_value(value).map(TicketRequest::SnapshotScan).map_err(|e| format!("invalid snapshot scan ticket: {e}"))
                }
                other => Err(format!("unknown scan kind {other:?}: expected \"log\" or \"snapshot\"")),
            }
        } else if let Some(kind) = map.remove("count") {
            let kind = match kind.as_str() {
                Some("log") => CountKind::Log,
                Some("rows") => CountKind::Rows,
                other => return Err(format!("unknown count kind {other:?}: expected \"log\" or \"rows\"")),
            };
            serde_json::from_value(value)
                .map(|c| TicketRequest::Count(CountRequest { kind, ..c }))
                .map_err(|e| format!("invalid count ticket: {e}"))
        } else if map.contains_key("lookup") {
            let lookup: LookupRequest = serde_json::from_value(value).map_err(|e| format!("invalid lookup ticket: {e}"))?;
            if lookup.keys.is_empty() {
                return Err("lookup ticket needs \"keys\": [[v1, ...], ...] (one array per key)".into());
            }
            Ok(TicketRequest::Lookup(lookup))
        } else {
            let keys: Vec<&String> = map.keys().collect();
            Err(format!("unknown ticket: expected a \"scan\", \"count\" or \"lookup\" key, got keys {keys:?}"))
        }
    }
}

/// The kind of a DoPut write.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WriteKind {
    Append,
    Upsert,
    Delete,
}

/// The CMD descriptor of a DoPut: `{"write": "append", database, table, ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WriteCommand {
    pub write: WriteKind,
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_columns: Option<Vec<String>>,
    /// Enables idempotent retries: batch `i` of the stream carries sequence `sequence + i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_id: Option<i64>,
    /// Sequence of the first batch of this stream (default 0); needs `writer_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
}

impl WriteCommand {
    pub fn append(database: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            write: WriteKind::Append,
            database: database.into(),
            table: table.into(),
            partition: None,
            target_columns: None,
            writer_id: None,
            sequence: None,
        }
    }
}

/// The app_metadata of each PutResult: one per DoPut batch, sent once it is durable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PutAck {
    pub rows: u64,
    pub buckets: Vec<BucketAppend>,
    /// The batch's sequence when the stream is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// True when this batch had been written before (a retry) and was not written again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Where the rows of one batch landed in one bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketAppend {
    pub bucket: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub base_offset: u64,
    pub count: u64,
}

/// The app_metadata of each record-batch FlightData of a scan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchMetadata {
    pub bucket: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub base_offset: u64,
    pub high_watermark: u64,
    /// The offset after the stored batch this message was cut from, when records of it were
    /// left out (`keys_upto`); otherwise the batch ends at `base_offset` + its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<u64>,
}

/// The app_metadata of each record-batch FlightData of a snapshot scan: the snapshot holds
/// exactly the changes of `bucket` before changelog offset `log_offset`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotMetadata {
    pub bucket: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub log_offset: u64,
}

/// The answer of `table_stats`: what this node's DoGet scans of one table sent since the node
/// started (or since the table was created, if later). Counted at the front door as messages
/// leave for the client, so a projected scan shows the bytes column pruning saved.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableStats {
    pub database: String,
    pub table: String,
    /// Log scans (log tables, changelogs) started.
    pub log_scans: u64,
    /// Snapshot scans of primary-key tables started.
    pub snapshot_scans: u64,
    /// Record-batch messages sent by those scans (the schema message not counted).
    pub messages_sent: u64,
    pub rows_sent: u64,
    /// Arrow IPC bytes sent: each message's header, body and app metadata (gRPC and protobuf
    /// framing not counted).
    pub bytes_sent: u64,
}

/// The answer of `health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// `"ok"`, or `"degraded"` while a background task's latest run failed for some table.
    pub status: String,
    pub version: String,
    pub uptime_ms: u64,
    /// The KV block cache's size in bytes (`kv.block_cache_bytes`, with `"auto"` resolved).
    #[serde(default)]
    pub kv_block_cache_bytes: u64,
    /// The tail cache of recent appends (`log.tail_cache_bytes`): what it holds and how many
    /// batches reads took from it or from segment files since the node started.
    #[serde(default)]
    pub tail_cache: TailCacheHealth,
    /// Background tasks (flush, retention, auto-partition, KV flush, data deletion) whose
    /// latest run failed, one entry per task and table; an entry goes away when the task
    /// succeeds again for that table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub background_failures: Vec<BackgroundFailure>,
}

/// The tail cache's figures in `health`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TailCacheHealth {
    pub budget_bytes: u64,
    pub held_bytes: u64,
    /// Batches served from the cache.
    pub hits: u64,
    /// Batches read from segment files (older than the cache holds).
    pub misses: u64,
}

/// The latest failure of one background task on one table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackgroundFailure {
    /// `flush`, `retention`, `auto_partition`, `kv_flush` or `drop_data`.
    pub task: String,
    /// `database.table` (None for node-wide tasks such as `kv_flush`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub error: String,
    /// When it last failed (ms since the epoch, the node's clock).
    pub at_ms: i64,
    /// Consecutive failed runs.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_log_scan_json_when_parsed_should_read_every_field() {
        let t = TicketRequest::parse(
            br#"{"scan":"log","database":"d","table":"t","buckets":[1],"from":{"offset":5},"to":"latest","follow":true,"columns":["a"],"limit":3,"metadata_columns":true}"#,
        )
        .unwrap();
        let TicketRequest::LogScan(scan) = t else { panic!("not a log scan") };
        assert_eq!(scan.from, StartPosition::Offset { offset: 5 });
        assert_eq!(scan.to, Some(EndPosition::Latest));
        assert!(scan.follow && scan.metadata_columns);
        assert_eq!(scan.buckets, Some(vec![1]));
        assert_eq!(scan.limit, Some(3));
    }

    #[test]
    fn given_ticket_when_round_tripped_should_be_equal() {
        let t = TicketRequest::LogScan(LogScan {
            database: "d".into(),
            table: "t".into(),
            from: StartPosition::Timestamp { timestamp: 42 },
            ..Default::default()
        });
        assert_eq!(TicketRequest::parse(&t.to_json()).unwrap(), t);
        let c = TicketRequest::Count(CountRequest { database: "d".into(), table: "t".into(), ..Default::default() });
        assert_eq!(TicketRequest::parse(&c.to_json()).unwrap(), c);
        let rows =
            TicketRequest::Count(CountRequest { kind: CountKind::Rows, database: "d".into(), table: "t".into(), ..Default::default() });
        assert_eq!(TicketRequest::parse(&rows.to_json()).unwrap(), rows);
        let snap = TicketRequest::SnapshotScan(SnapshotScan {
            database: "d".into(),
            table: "t".into(),
            filter: Some(vec![Predicate { column: "a".into(), op: PredicateOp::In, value: Some(serde_json::json!([1, 2])) }]),
            limit: Some(5),
            ..Default::default()
        });
        assert_eq!(TicketRequest::parse(&snap.to_json()).unwrap(), snap);
        let lookup = TicketRequest::Lookup(LookupRequest {
            lookup: LookupKind::Prefix,
            database: "d".into(),
            table: "t".into(),
            keys: vec![vec![serde_json::json!(1)]],
            insert_if_not_exists: true,
            ..Default::default()
        });
        assert_eq!(TicketRequest::parse(&lookup.to_json()).unwrap(), lookup);
    }

    #[test]
    fn given_lookup_and_snapshot_json_when_parsed_should_read_every_field() {
        let t = TicketRequest::parse(
            br#"{"lookup":"primary_key","database":"d","table":"t","keys":[[1,"a"],[2,"b"]],"columns":["v"],"insert_if_not_exists":true}"#,
        )
        .unwrap();
        let TicketRequest::Lookup(l) = t else { panic!("not a lookup") };
        assert_eq!(l.lookup, LookupKind::PrimaryKey);
        assert_eq!(l.keys.len(), 2);
        assert!(l.insert_if_not_exists);
        let err = TicketRequest::parse(br#"{"lookup":"prefix","database":"d","table":"t"}"#).unwrap_err();
        assert!(err.contains("keys"), "{err}");
        let err = TicketRequest::parse(br#"{"lookup":"range","database":"d","table":"t","keys":[[1]]}"#).unwrap_err();
        assert!(err.contains("range"), "{err}");
        let t = TicketRequest::parse(br#"{"scan":"snapshot","database":"d","table":"t","filter":[{"column":"x","op":">=","value":3},{"column":"y","op":"is_null"}]}"#)
            .unwrap();
        let TicketRequest::SnapshotScan(s) = t else { panic!("not a snapshot scan") };
        assert_eq!(s.filter.unwrap()[1].op, PredicateOp::IsNull);
    }

    #[test]
    fn given_garbage_tickets_when_parsed_should_name_the_problem() {
        assert!(TicketRequest::parse(b"").unwrap_err().contains("empty"));
        assert!(TicketRequest::parse(b"\x00\x01").unwrap_err().contains("JSON"));
        assert!(TicketRequest::parse(b"[1]").unwrap_err().contains("object"));
        assert!(TicketRequest::parse(br#"{"foo":1}"#).unwrap_err().contains("foo"));
        let err = TicketRequest::parse(br#"{"scan":"log","database":"d","table":"t","colums":["a"]}"#).unwrap_err();
        assert!(err.contains("colums"), "{err}");
    }

    #[test]
    fn given_column_json_when_parsed_should_remember_whether_nullable_was_declared() {
        let cols: Vec<ColumnSpec> =
            serde_json::from_str(r#"[{"name":"a","type":"INT"},{"name":"b","type":"INT","nullable":true}]"#).unwrap();
        assert!(cols[0].nullable && !cols[0].nullable_declared);
        assert!(cols[1].nullable && cols[1].nullable_declared);
        let sent = serde_json::to_string(&[ColumnSpec::new("k", "INT"), ColumnSpec::new("v", "INT").not_null()]).unwrap();
        assert_eq!(sent, r#"[{"name":"k","type":"INT"},{"name":"v","type":"INT","nullable":false}]"#, "undeclared nullability is not sent");
        let err = serde_json::from_str::<ColumnSpec>(r#"{"name":"a","type":"INT","nullabel":false}"#).unwrap_err().to_string();
        assert!(err.contains("nullabel"), "{err}");
    }

    #[test]
    fn given_offset_specs_when_parsed_should_accept_all_forms() {
        let specs: Vec<OffsetSpec> = serde_json::from_str(r#"["earliest","latest",{"timestamp":7}]"#).unwrap();
        assert_eq!(specs, vec![OffsetSpec::Earliest, OffsetSpec::Latest, OffsetSpec::Timestamp { timestamp: 7 }]);
    }
}
