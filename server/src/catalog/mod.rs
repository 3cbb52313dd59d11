//! The catalog: databases and tables, validated on the way in and persisted durably.
//!
//! The whole catalog is one small file (`catalog.bin`: an envelope around JSON) replaced
//! atomically on every change. Mutations are serialized; readers see an immutable snapshot.

pub mod auto_partition;
pub mod options;
pub mod pk;
pub mod types;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::fs::{self, FileSystem};
use arrow_schema::{Field, Schema, SchemaRef};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strom_flight_api::{AlterTable, ColumnSpec, CreateDatabase, CreateTable, TableInfo};

const CATALOG_MAGIC: &[u8; 4] = b"STRC";
const CATALOG_VERSION: u16 = 1;
const CATALOG_FILE: &str = "catalog.bin";

/// A table as stored in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableMeta {
    pub table_id: u64,
    pub database: String,
    pub name: String,
    pub schema_id: u32,
    pub columns: Vec<ColumnSpec>,
    pub primary_key: Vec<String>,
    pub partition_keys: Vec<String>,
    pub bucket_key: Vec<String>,
    pub bucket_num: u32,
    /// Every option with its effective value.
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
    pub created_at_ms: i64,
    /// Partitions of a partitioned table, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, PartitionMeta>,
    /// Column count of every schema version the table has had (schema id → columns), when
    /// columns were added; empty otherwise. Added columns are appended, so schema `n`'s columns
    /// are the first `count` columns of the current ones: a stored row or batch is read by
    /// its schema id and gets nulls for the columns added after it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_columns: BTreeMap<u32, usize>,
    /// Set only on the in-memory view of one partition (`partition_view`): its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// One partition of a partitioned table. Its data lives under its own id, like a table's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionMeta {
    pub partition_id: u64,
    pub name: String,
    /// Values in partition-key order.
    pub values: Vec<String>,
    pub created_at_ms: i64,
}

/// Separates the values of a multi-key partition name (Fluss's convention).
pub const PARTITION_VALUE_SEPARATOR: char = '$';

/// Checks one partition value: what may appear in a partition name.
pub fn validate_partition_value(column: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && value != "."
        && value != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "partition value {value:?} of column {column:?} is invalid: use 1-200 ASCII letters, digits, '_', '-' or '.'"
        )))
    }
}

impl TableMeta {
    /// The Arrow schema of the table's rows.
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| Ok(Field::new(&c.name, types::parse_sql_type(&c.name, &c.data_type)?.arrow, c.nullable)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    pub fn info(&self) -> TableInfo {
        TableInfo {
            database: self.database.clone(),
            table: self.name.clone(),
            table_id: self.table_id,
            schema_id: self.schema_id,
            kind: if self.primary_key.is_empty() { "log".into() } else { "primary_key".into() },
            columns: self.columns.clone(),
            primary_key: self.primary_key.clone(),
            partition_keys: self.partition_keys.clone(),
            bucket_key: self.bucket_key.clone(),
            bucket_num: self.bucket_num,
            options: self.options.clone(),
            partitions: self.partitions.keys().cloned().collect(),
            comment: self.comment.clone(),
            created_at_ms: self.created_at_ms,
        }
    }

    /// `db.table`, or `db.table(partition=p)` for the view of one partition.
    pub fn path(&self) -> String {
        match &self.partition {
            None => format!("{}.{}", self.database, self.name),
            Some(p) => format!("{}.{}(partition={p})", self.database, self.name),
        }
    }

    /// Columns from this position on were added by `alter_table`: writes may leave them out
    /// (they are nullable), as writers that started before the change do.
    pub fn first_added_column(&self) -> usize {
        self.schema_columns.values().min().copied().unwrap_or(self.columns.len())
    }

    pub fn is_partitioned(&self) -> bool {
        !self.partition_keys.is_empty()
    }

    /// The partition values a partition name stands for (checked against the partition keys).
    pub fn parse_partition_name(&self, name: &str) -> Result<Vec<String>> {
        if !self.is_partitioned() {
            return Err(Error::invalid(format!("table {} is not partitioned", self.path())));
        }
        let values: Vec<String> = name.split(PARTITION_VALUE_SEPARATOR).map(str::to_string).collect();
        if values.len() != self.partition_keys.len() {
            return Err(Error::invalid(format!(
                "partition {name:?} of table {} has {} value(s); the table is partitioned by {} ({}); join several values with '{PARTITION_VALUE_SEPARATOR}'",
                self.path(),
                values.len(),
                self.partition_keys.len(),
                self.partition_keys.join(", ")
            )));
        }
        for (k, v) in self.partition_keys.iter().zip(&values) {
            validate_partition_value(k, v)?;
        }
        Ok(values)
    }

    /// The metadata one partition's runtime works with: the table's, under the partition's id.
    pub fn partition_view(&self, partition: &PartitionMeta) -> TableMeta {
        TableMeta { table_id: partition.partition_id, partitions: BTreeMap::new(), partition: Some(partition.name.clone()), ..self.clone() }
    }

    /// The validated primary-key definition (None for log tables).
    pub fn pk_spec(&self) -> Result<Option<pk::PkSpec>> {
        if self.primary_key.is_empty() {
            return Ok(None);
        }
        let schema = self.arrow_schema()?;
        let declared_nullable = vec![false; schema.fields().len()];
        pk::validate(&schema, &self.primary_key, &self.partition_keys, &self.bucket_key, &declared_nullable, &self.options).map(Some)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseMeta {
    pub name: String,
    pub comment: Option<String>,
    pub created_at_ms: i64,
    pub tables: BTreeMap<String, Arc<TableMeta>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct CatalogState {
    next_table_id: u64,
    databases: BTreeMap<String, DatabaseMeta>,
}

/// What a table-creating caller needs from the node's configuration.
#[derive(Debug, Clone, Copy)]
pub struct TableDefaults {
    pub bucket_num: u32,
    pub durability: Durability,
}

pub struct Catalog {
    fs: Arc<dyn FileSystem>,
    file: PathBuf,
    state: RwLock<Arc<CatalogState>>,
    /// Serializes mutations so two changes never race on the file.
    write_lock: Mutex<()>,
}

fn now_ms() -> i64 {
    crate::clock::system_now_ms()
}

fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("{kind} name {name:?} is invalid: use 1-200 ASCII letters, digits, '_' or '-'")))
    }
}

impl Catalog {
    /// Opens (or creates) the catalog in `dir`.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        fs::create_dir_all_durable(fs.as_ref(), dir)?;
        let file = dir.join(CATALOG_FILE);
        let state = match fs.read(&file) {
            Ok(bytes) => {
                let (_, body) = fs::open_envelope(&file, CATALOG_MAGIC, CATALOG_VERSION, &bytes)?;
                serde_json::from_slice(body).map_err(|e| Error::DataLoss {
                    location: file.display().to_string(),
                    detail: format!("catalog JSON does not decode: {e}"),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogState { next_table_id: 1, ..Default::default() },
            Err(e) => return Err(Error::io(file.display(), e)),
        };
        Ok(Self { fs, file, state: RwLock::new(Arc::new(state)), write_lock: Mutex::new(()) })
    }

    fn snapshot(&self) -> Arc<CatalogState> {
        self.state.read().clone()
    }

    /// Applies `change` to a copy of the state, persists it, then publishes it.
    fn mutate<T>(&self, change: impl FnOnce(&mut CatalogState) -> Result<T>) -> Result<T> {
        let _guard = self.write_lock.lock();
        let mut next = (*self.snapshot()).clone();
        let out = change(&mut next)?;
        let body = serde_json::to_vec(&next).map_err(|e| Error::Internal(format!("catalog does not encode: {e}")))?;
        // The write lock is held across this fsync: metadata changes are serialized on one file;
        // readers use the published state and never wait for it.
        fs::write_atomic(self.fs.as_ref(), &self.file, &fs::envelope(CATALOG_MAGIC, CATALOG_VERSION, &body))?;
        *self.state.write() = Arc::new(next);
        Ok(out)
    }

    /// Returns whether the database was created.
    pub fn create_database(&self, req: &CreateDatabase) -> Result<bool> {
        validate_name("database", &req.name)?;
        if self.snapshot().databases.contains_key(&req.name) {
            return if req.if_not_exists {
                Ok(false)
            } else {
                Err(Error::AlreadyExists(format!("database {:?} already exists", req.name)))
            };
        }
        self.mutate(|s| {
            if s.databases.contains_key(&req.name) {
                return if req.if_not_exists {
                    Ok(false)
                } else {
                    Err(Error::AlreadyExists(format!("database {:?} already exists", req.name)))
                };
            }
            s.databases.insert(
                req.name.clone(),
                DatabaseMeta { name: req.name.clone(), comment: req.comment.clone(), created_at_ms: now_ms(), tables: BTreeMap::new() },
            );
            Ok(true)
        })
    }

    /// Drops a database; returns the tables that went with it (their data must be deleted).
    pub fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<Option<Vec<Arc<TableMeta>>>> {
        self.mutate(|s| {
            let Some(db) = s.databases.get(name) else {
                return if if_exists { Ok(None) } else { Err(Error::NotFound(format!("database {name:?} does not exist"))) };
            };
            if !db.tables.is_empty() && !cascade {
                return Err(Error::FailedPrecondition(format!(
                    "database {name:?} holds {} table(s); drop them first or pass \"cascade\": true",
                    db.tables.len()
                )));
            }
            let db = s.databases.remove(name).expect("checked above");
            Ok(Some(db.tables.into_values().collect()))
        })
    }

    pub fn list_databases(&self) -> Vec<String> {
        self.snapshot().databases.keys().cloned().collect()
    }

    pub fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        let s = self.snapshot();
        let db = s.databases.get(database).ok_or_else(|| Error::NotFound(format!("database {database:?} does not exist")))?;
        Ok(db.tables.keys().cloned().collect())
    }

    pub fn all_tables(&self) -> Vec<Arc<TableMeta>> {
        self.snapshot().databases.values().flat_map(|d| d.tables.values().cloned()).collect()
    }

    pub fn get_table(&self, database: &str, table: &str) -> Result<Arc<TableMeta>> {
        let s = self.snapshot();
        let db = s.databases.get(database).ok_or_else(|| Error::NotFound(format!("database {database:?} does not exist")))?;
        db.tables.get(table).cloned().ok_or_else(|| Error::NotFound(format!("table {database}.{table} does not exist")))
    }

    /// Validates and creates a table. `Ok(None)` when it existed and `if_not_exists` was set.
    pub fn create_table(&self, req: &CreateTable, defaults: TableDefaults) -> Result<Option<Arc<TableMeta>>> {
        let meta = validate_table(req, defaults)?;
        self.mutate(|s| {
            let db =
                s.databases.get_mut(&req.database).ok_or_else(|| Error::NotFound(format!("database {:?} does not exist", req.database)))?;
            if db.tables.contains_key(&req.table) {
                return if req.if_not_exists {
                    Ok(None)
                } else {
                    Err(Error::AlreadyExists(format!("table {}.{} already exists", req.database, req.table)))
                };
            }
            let meta = Arc::new(TableMeta { table_id: s.next_table_id, ..meta });
            s.next_table_id += 1;
            db.tables.insert(req.table.clone(), meta.clone());
            Ok(Some(meta))
        })
    }

    pub fn drop_table(&self, database: &str, table: &str, if_exists: bool) -> Result<Option<Arc<TableMeta>>> {
        self.mutate(|s| {
            let db = s.databases.get_mut(database).ok_or_else(|| Error::NotFound(format!("database {database:?} does not exist")))?;
            match db.tables.remove(table) {
                Some(t) => Ok(Some(t)),
                None if if_exists => Ok(None),
                None => Err(Error::NotFound(format!("table {database}.{table} does not exist"))),
            }
        })
    }

    /// Creates a partition; `Ok(None)` when it existed and `if_not_exists` was set.
    pub fn create_partition(&self, database: &str, table: &str, name: &str, if_not_exists: bool) -> Result<Option<PartitionMeta>> {
        self.mutate(|s| {
            let t = table_mut(s, database, table)?;
            let values = t.parse_partition_name(name)?;
            if t.partitions.contains_key(name) {
                return if if_not_exists {
                    Ok(None)
                } else {
                    Err(Error::AlreadyExists(format!("partition {name:?} of table {database}.{table} already exists")))
                };
            }
            let partition = PartitionMeta { partition_id: s.next_table_id, name: name.to_string(), values, created_at_ms: now_ms() };
            s.next_table_id += 1;
            let t = table_mut(s, database, table)?;
            let mut meta = (**t).clone();
            meta.partitions.insert(name.to_string(), partition.clone());
            *t = Arc::new(meta);
            Ok(Some(partition))
        })
    }

    /// Drops a partition; returns it (its data must be deleted), `Ok(None)` if it did not
    /// exist and `if_exists` was set.
    pub fn drop_partition(&self, database: &str, table: &str, name: &str, if_exists: bool) -> Result<Option<PartitionMeta>> {
        self.mutate(|s| {
            let t = table_mut(s, database, table)?;
            t.parse_partition_name(name)?;
            if !t.partitions.contains_key(name) {
                return if if_exists {
                    Ok(None)
                } else {
                    Err(Error::NotFound(format!("partition {name:?} of table {database}.{table} does not exist")))
                };
            }
            let mut meta = (**t).clone();
            let removed = meta.partitions.remove(name);
            *t = Arc::new(meta);
            Ok(removed)
        })
    }

    /// Changes options that may change online and appends nullable columns (a new schema id).
    pub fn alter_table(&self, req: &AlterTable) -> Result<Arc<TableMeta>> {
        options::validate_online_change(&req.set_options)?;
        self.mutate(|s| {
            let db =
                s.databases.get_mut(&req.database).ok_or_else(|| Error::NotFound(format!("database {:?} does not exist", req.database)))?;
            let t = db
                .tables
                .get_mut(&req.table)
                .ok_or_else(|| Error::NotFound(format!("table {}.{} does not exist", req.database, req.table)))?;
            let mut meta = (**t).clone();
            if req.set_options.keys().any(|k| auto_partition::OPTIONS.contains(&k.as_str()))
                && auto_partition::from_options(&meta.options, &meta.partition_keys)?.is_none()
            {
                return Err(Error::invalid(format!(
                    "table {}.{} is not auto-partitioned: its auto-partition options cannot change",
                    req.database, req.table
                )));
            }
            meta.options.extend(req.set_options.clone());
            if !req.add_columns.is_empty() {
                add_columns(&mut meta, &req.add_columns)?;
            }
            let meta = Arc::new(meta);
            *t = meta.clone();
            Ok(meta)
        })
    }
}

/// Appends `added` to `meta` as a new schema version; every check passes before anything changes.
fn add_columns(meta: &mut TableMeta, added: &[ColumnSpec]) -> Result<()> {
    let path = meta.path();
    let mut names: HashSet<String> = meta.columns.iter().map(|c| c.name.clone()).collect();
    let mut columns = Vec::with_capacity(added.len());
    for c in added {
        if c.name.is_empty() || matches!(c.name.as_str(), "_bucket" | "_offset" | "_timestamp" | "_change_type" | "_key_index") {
            return Err(Error::invalid(format!("table {path}: column name {:?} is empty or reserved for metadata columns", c.name)));
        }
        if !names.insert(c.name.clone()) {
            return Err(Error::invalid(format!("table {path}: column {:?} already exists", c.name)));
        }
        if !c.nullable {
            return Err(Error::invalid(format!(
                "table {path}: added column {:?} must be nullable: rows written before it read it as null",
                c.name
            )));
        }
        let ty = types::parse_sql_type(&c.name, &c.data_type)?;
        columns.push(ColumnSpec {
            name: c.name.clone(),
            data_type: ty.normalized,
            nullable: true,
            comment: c.comment.clone(),
            nullable_declared: true,
        });
    }
    let mut next = meta.clone();
    if next.schema_columns.is_empty() {
        next.schema_columns.insert(next.schema_id, next.columns.len());
    }
    next.columns.extend(columns);
    next.schema_id += 1;
    next.schema_columns.insert(next.schema_id, next.columns.len());
    next.arrow_schema()?;
    // Merge engines take the new columns too (an aggregation table aggregates them with the
    // default function).
    next.pk_spec()?;
    *meta = next;
    Ok(())
}

fn table_mut<'a>(s: &'a mut CatalogState, database: &str, table: &str) -> Result<&'a mut Arc<TableMeta>> {
    s.databases
        .get_mut(database)
        .ok_or_else(|| Error::NotFound(format!("database {database:?} does not exist")))?
        .tables
        .get_mut(table)
        .ok_or_else(|| Error::NotFound(format!("table {database}.{table} does not exist")))
}

/// Checks a `create_table` request and builds its metadata (without an id yet).
fn validate_table(req: &CreateTable, defaults: TableDefaults) -> Result<TableMeta> {
    validate_name("database", &req.database)?;
    validate_name("table", &req.table)?;
    if req.columns.is_empty() {
        return Err(Error::invalid(format!("table {}.{} needs at least one column", req.database, req.table)));
    }
    let mut seen = HashSet::new();
    let mut columns = Vec::with_capacity(req.columns.len());
    for c in &req.columns {
        if c.name.is_empty() || c.name.starts_with('_') && matches!(c.name.as_str(), "_bucket" | "_offset" | "_timestamp" | "_change_type")
        {
            return Err(Error::invalid(format!("column name {:?} is empty or reserved for metadata columns", c.name)));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(Error::invalid(format!("duplicate column {:?}", c.name)));
        }
        let ty = types::parse_sql_type(&c.name, &c.data_type)?;
        // Key columns are NOT NULL unless the request says otherwise (which `pk` rejects).
        let in_key = req.primary_key.contains(&c.name);
        let nullable = c.nullable && (c.nullable_declared || !in_key);
        columns.push(ColumnSpec {
            name: c.name.clone(),
            data_type: ty.normalized,
            nullable,
            comment: c.comment.clone(),
            nullable_declared: true,
        });
    }
    let mut partition_seen = HashSet::new();
    for p in &req.partition_keys {
        let Some(column) = columns.iter().find(|c| &c.name == p) else {
            return Err(Error::invalid(format!("partition key {p:?} is not a column of the table")));
        };
        if !partition_seen.insert(p) {
            return Err(Error::invalid(format!("partition key {p:?} is listed twice")));
        }
        if types::parse_sql_type(&column.name, &column.data_type)?.arrow != arrow_schema::DataType::Utf8 {
            return Err(Error::invalid(format!(
                "partition key {p:?} has type {}; partition keys must be STRING (partition names are their values)",
                column.data_type
            )));
        }
    }
    // bucket.num may come as a field or an option; if both, they must agree.
    let option_buckets = match req.options.get(options::BUCKET_NUM) {
        Some(v) => {
            Some(v.trim().parse::<u32>().map_err(|_| Error::invalid(format!("option \"bucket.num\" = {v:?}: must be an integer >= 1")))?)
        }
        None => None,
    };
    let bucket_num = match (req.bucket_num, option_buckets) {
        (Some(a), Some(b)) if a != b => return Err(Error::invalid(format!("bucket_num {a} and option \"bucket.num\" = {b} disagree"))),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => defaults.bucket_num,
    };
    if bucket_num == 0 || bucket_num > 1024 {
        return Err(Error::invalid(format!("bucket_num {bucket_num} must be between 1 and 1024")));
    }
    let option_key: Vec<String> =
        req.options.get(options::BUCKET_KEY).map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default();
    let bucket_key = match (req.bucket_key.is_empty(), option_key.is_empty()) {
        (false, false) if req.bucket_key != option_key => {
            return Err(Error::invalid(format!("bucket_key {:?} and option \"bucket.key\" {:?} disagree", req.bucket_key, option_key)));
        }
        (false, _) => req.bucket_key.clone(),
        (true, _) => option_key,
    };
    let mut key_seen = HashSet::new();
    for k in &bucket_key {
        if !seen.contains(k.as_str()) {
            return Err(Error::invalid(format!("bucket key column {k:?} is not a column of the table")));
        }
        if req.partition_keys.contains(k) {
            return Err(Error::invalid(format!(
                "bucket key column {k:?} is a partition key: every partition has its own buckets, so the bucket key must exclude partition keys"
            )));
        }
        if !key_seen.insert(k) {
            return Err(Error::invalid(format!("bucket key column {k:?} is listed twice")));
        }
    }
    let mut full = options::validate_and_fill(&req.options, bucket_num, defaults.durability, !req.primary_key.is_empty())?;
    auto_partition::fill(&mut full, &req.partition_keys)?;
    if !req.primary_key.is_empty() {
        let fields = columns
            .iter()
            .map(|c| Ok(Field::new(&c.name, types::parse_sql_type(&c.name, &c.data_type)?.arrow, c.nullable)))
            .collect::<Result<Vec<_>>>()?;
        let declared_nullable: Vec<bool> = req.columns.iter().map(|c| c.nullable && c.nullable_declared).collect();
        pk::validate(&Schema::new(fields), &req.primary_key, &req.partition_keys, &bucket_key, &declared_nullable, &req.options)?;
    }
    // A primary-key table's bucket key defaults to its primary key without the partition keys.
    let bucket_key = if bucket_key.is_empty() {
        req.primary_key.iter().filter(|k| !req.partition_keys.contains(k)).cloned().collect()
    } else {
        bucket_key
    };
    if !bucket_key.is_empty() {
        full.insert(options::BUCKET_KEY.into(), bucket_key.join(","));
    }
    let meta = TableMeta {
        table_id: 0,
        database: req.database.clone(),
        name: req.table.clone(),
        schema_id: 1,
        columns,
        primary_key: req.primary_key.clone(),
        partition_keys: req.partition_keys.clone(),
        bucket_key,
        bucket_num,
        options: full,
        comment: req.comment.clone(),
        created_at_ms: now_ms(),
        partitions: BTreeMap::new(),
        schema_columns: BTreeMap::new(),
        partition: None,
    };
    meta.arrow_schema()?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_flight_api::ColumnSpec;

    const DEFAULTS: TableDefaults = TableDefaults { bucket_num: 1, durability: Durability::Sync };

    fn table(db: &str, name: &str) -> CreateTable {
        CreateTable {
            database: db.into(),
            table: name.into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("name", "STRING")],
            bucket_num: Some(4),
            bucket_key: vec!["id".into()],
            ..Default::default()
        }
    }

    #[test]
    fn given_created_tables_when_reopened_should_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(Arc::new(crate::fs::RealFs::new()), dir.path()).unwrap();
            assert!(c.create_database(&CreateDatabase { name: "db".into(), ..Default::default() }).unwrap());
            let t = c.create_table(&table("db", "t"), DEFAULTS).unwrap().unwrap();
            assert_eq!(t.bucket_num, 4);
            assert_eq!(t.options["bucket.key"], "id");
        }
        let c = Catalog::open(Arc::new(crate::fs::RealFs::new()), dir.path()).unwrap();
        assert_eq!(c.list_tables("db").unwrap(), vec!["t"]);
        assert_eq!(c.get_table("db", "t").unwrap().table_id, 1);
    }

    #[test]
    fn given_duplicates_when_created_should_be_already_exists_unless_if_not_exists() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(Arc::new(crate::fs::RealFs::new()), dir.path()).unwrap();
        c.create_database(&CreateDatabase { name: "db".into(), ..Default::default() }).unwrap();
        assert!(matches!(c.create_database(&CreateDatabase { name: "db".into(), ..Default::default() }), Err(Error::AlreadyExists(_))));
        assert!(!c.create_database(&CreateDatabase { name: "db".into(), if_not_exists: true, ..Default::default() }).unwrap());
        c.create_table(&table("db", "t"), DEFAULTS).unwrap();
        assert!(matches!(c.create_table(&table("db", "t"), DEFAULTS), Err(Error::AlreadyExists(_))));
        assert!(c.create_table(&CreateTable { if_not_exists: true, ..table("db", "t") }, DEFAULTS).unwrap().is_none());
    }

    #[test]
    fn given_invalid_tables_when_created_should_name_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(Arc::new(crate::fs::RealFs::new()), dir.path()).unwrap();
        c.create_database(&CreateDatabase { name: "db".into(), ..Default::default() }).unwrap();
        let mut dup = table("db", "t");
        dup.columns.push(ColumnSpec::new("id", "INT"));
        let mut bad_key = table("db", "t");
        bad_key.bucket_key = vec!["nope".into()];
        let mut bad_type = table("db", "t");
        bad_type.columns[1].data_type = "STRIN".into();
        for (req, culprit) in [(dup, "\"id\""), (bad_key, "nope"), (bad_type, "STRIN")] {
            let err = c.create_table(&req, DEFAULTS).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert!(err.to_string().contains(culprit), "{err}");
        }
        assert!(c.list_tables("db").unwrap().is_empty(), "nothing written by rejected requests");
    }

    #[test]
    fn given_non_empty_database_when_dropped_without_cascade_should_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(Arc::new(crate::fs::RealFs::new()), dir.path()).unwrap();
        c.create_database(&CreateDatabase { name: "db".into(), ..Default::default() }).unwrap();
        c.create_table(&table("db", "t"), DEFAULTS).unwrap();
        assert!(matches!(c.drop_database("db", false, false), Err(Error::FailedPrecondition(_))));
        assert_eq!(c.drop_database("db", false, true).unwrap().unwrap().len(), 1);
        assert!(c.list_databases().is_empty());
    }
}
