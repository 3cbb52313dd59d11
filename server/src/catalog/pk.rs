//! Primary-key table definitions: keys, merge engines, aggregation functions and the options
//! that shape the changelog, validated into typed form.
//!
//! Rules (Fluss's, stated once here): primary-key columns are NOT NULL; the bucket key is a
//! subset of the primary key (default: the whole key) and, when it is a strict prefix of the
//! key, becomes the prefix-lookup index; aggregation functions apply to non-key columns and must
//! fit the column type; the version column of `versioned` is INT, BIGINT, TIMESTAMP or
//! TIMESTAMP_LTZ and not a key column; `auto-increment.fields` names one INT/BIGINT non-key column.

use crate::error::{Error, Result};
use arrow_schema::{DataType, Schema};
use std::collections::{BTreeMap, HashSet};

pub const MERGE_ENGINE: &str = "table.merge-engine";
pub const VERSION_COLUMN: &str = "table.merge-engine.versioned.ver-column";
pub const DELETE_BEHAVIOR: &str = "table.delete.behavior";
pub const CHANGELOG_IMAGE: &str = "table.changelog.image";
pub const AUTO_INCREMENT: &str = "auto-increment.fields";

/// Options that only primary-key tables accept.
pub const PK_ONLY: &[&str] = &[MERGE_ENGINE, VERSION_COLUMN, DELETE_BEHAVIOR, CHANGELOG_IMAGE, AUTO_INCREMENT];

/// How a write is merged with the stored row of the same key.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeEngine {
    /// The default: the newest write wins (partial updates change only their target columns).
    LastRow,
    /// The first write of a key wins; later writes are ignored and emit no change.
    FirstRow,
    /// The write with the highest version column wins (ties: the newer write).
    Versioned { column: usize },
    /// Every non-key column is folded with its aggregation function.
    Aggregation { functions: Vec<Option<AggSpec>> },
}

/// The aggregation of one non-key column.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub function: AggFunction,
    /// For listagg / string_agg.
    pub delimiter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunction {
    Sum,
    Product,
    Max,
    Min,
    LastValue,
    LastValueIgnoreNulls,
    FirstValue,
    FirstValueIgnoreNulls,
    ListAgg,
    BoolAnd,
    BoolOr,
    Rbm32,
    Rbm64,
}

impl AggFunction {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "sum" => Self::Sum,
            "product" => Self::Product,
            "max" => Self::Max,
            "min" => Self::Min,
            "last_value" => Self::LastValue,
            "last_value_ignore_nulls" => Self::LastValueIgnoreNulls,
            "first_value" => Self::FirstValue,
            "first_value_ignore_nulls" => Self::FirstValueIgnoreNulls,
            "listagg" | "string_agg" => Self::ListAgg,
            "bool_and" => Self::BoolAnd,
            "bool_or" => Self::BoolOr,
            "rbm32" => Self::Rbm32,
            "rbm64" => Self::Rbm64,
            _ => return None,
        })
    }

    /// Whether the function is defined for values of `dt`.
    pub fn fits(self, dt: &DataType) -> bool {
        use DataType::*;
        let numeric = dt.is_numeric();
        let ordered = numeric || matches!(dt, Utf8 | LargeUtf8 | Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(..) | Boolean);
        match self {
            Self::Sum | Self::Product => numeric,
            Self::Max | Self::Min => ordered,
            Self::LastValue | Self::LastValueIgnoreNulls | Self::FirstValue | Self::FirstValueIgnoreNulls => true,
            Self::ListAgg => matches!(dt, Utf8 | LargeUtf8),
            Self::BoolAnd | Self::BoolOr => matches!(dt, Boolean),
            Self::Rbm32 | Self::Rbm64 => matches!(dt, Binary | LargeBinary),
        }
    }
}

/// What `table.delete.behavior` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBehavior {
    Allow,
    /// Deletes are dropped silently (the changelog never carries `-D`).
    Ignore,
    /// Deletes are rejected.
    Disable,
}

/// What the changelog records for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogImage {
    /// `-U` (before) and `+U` (after).
    Full,
    /// Only `+U`, like a write-ahead log.
    Wal,
}

/// A validated primary-key table definition (column positions refer to the table schema).
#[derive(Debug, Clone, PartialEq)]
pub struct PkSpec {
    /// Key columns in storage order: partition keys first, then the rest as declared.
    pub key: Vec<usize>,
    /// Key columns as the table declares them (the order of JSON lookup keys).
    pub declared_key: Vec<usize>,
    pub bucket_key: Vec<usize>,
    /// The number of leading key columns a prefix lookup uses, when the bucket key is a strict
    /// prefix of the primary key.
    pub prefix_len: Option<usize>,
    pub merge_engine: MergeEngine,
    pub delete_behavior: DeleteBehavior,
    pub changelog_image: ChangelogImage,
    pub auto_increment: Option<usize>,
    /// Column names by position (for error messages).
    pub column_names: Vec<String>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn positions(schema: &Schema, names: &[String], what: &str) -> Result<Vec<usize>> {
    let mut seen = HashSet::new();
    names
        .iter()
        .map(|n| {
            if !seen.insert(n) {
                return Err(invalid(format!("{what} column {n:?} is listed twice")));
            }
            schema.index_of(n).map_err(|_| invalid(format!("{what} column {n:?} is not a column of the table")))
        })
        .collect()
}

/// Validates a primary-key table: keys, nullability and every primary-key option.
/// `nullable` tells, per column, whether the request declared it nullable explicitly.
///
/// In a partitioned table the partition keys are part of the primary key and are stored first
/// in the KV key (constant within a partition); the bucket key (default: the rest of the primary
/// key) excludes them, and a bucket key that is a strict prefix of the rest of the primary key
/// makes `partition keys + bucket key` the prefix-lookup key.
pub fn validate(
    schema: &Schema,
    primary_key: &[String],
    partition_keys: &[String],
    bucket_key: &[String],
    explicitly_nullable: &[bool],
    options: &BTreeMap<String, String>,
) -> Result<PkSpec> {
    let declared = positions(schema, primary_key, "primary key")?;
    let partitions = positions(schema, partition_keys, "partition key")?;
    for &p in &partitions {
        if !declared.contains(&p) {
            return Err(invalid(format!(
                "partition key column {:?} is not part of the primary key {primary_key:?}: a primary-key table's partition keys must be key columns",
                schema.field(p).name()
            )));
        }
    }
    let rest: Vec<usize> = declared.iter().copied().filter(|k| !partitions.contains(k)).collect();
    if rest.is_empty() {
        return Err(invalid(format!("primary key {primary_key:?} holds only partition keys: it needs at least one other column")));
    }
    let key: Vec<usize> = partitions.iter().chain(rest.iter()).copied().collect();
    for &k in &key {
        if explicitly_nullable[k] {
            return Err(invalid(format!("primary key column {:?} is declared nullable; key columns are NOT NULL", schema.field(k).name())));
        }
        if matches!(schema.field(k).data_type(), DataType::List(_) | DataType::Map(..) | DataType::Struct(_)) {
            return Err(invalid(format!("primary key column {:?} has a nested type; keys must be scalar", schema.field(k).name())));
        }
    }
    let bucket = if bucket_key.is_empty() { rest.clone() } else { positions(schema, bucket_key, "bucket key")? };
    for &b in &bucket {
        if partitions.contains(&b) {
            return Err(invalid(format!(
                "bucket key column {:?} is a partition key: every partition has its own buckets, so the bucket key must exclude partition keys",
                schema.field(b).name()
            )));
        }
        if !key.contains(&b) {
            return Err(invalid(format!("bucket key column {:?} is not part of the primary key {primary_key:?}", schema.field(b).name())));
        }
    }
    let prefix_len = (bucket.len() < rest.len() && rest[..bucket.len()] == bucket[..]).then_some(partitions.len() + bucket.len());
    let opt = |k: &str| options.get(k).map(|v| v.trim());
    let merge_engine = match opt(MERGE_ENGINE).map(|v| v.to_ascii_lowercase()) {
        None => MergeEngine::LastRow,
        Some(v) if v == "last_row" || v == "last-row" => MergeEngine::LastRow,
        Some(v) if v == "first_row" => MergeEngine::FirstRow,
        Some(v) if v == "versioned" => {
            let name =
                opt(VERSION_COLUMN).ok_or_else(|| invalid(format!("option {MERGE_ENGINE:?} = versioned needs {VERSION_COLUMN:?}")))?;
            let column = schema.index_of(name).map_err(|_| invalid(format!("option {VERSION_COLUMN:?} = {name:?}: no such column")))?;
            if key.contains(&column) {
                return Err(invalid(format!("option {VERSION_COLUMN:?} = {name:?}: the version column cannot be a key column")));
            }
            if !matches!(schema.field(column).data_type(), DataType::Int32 | DataType::Int64 | DataType::Timestamp(..)) {
                return Err(invalid(format!(
                    "option {VERSION_COLUMN:?} = {name:?}: type {} is not INT, BIGINT, TIMESTAMP or TIMESTAMP_LTZ",
                    schema.field(column).data_type()
                )));
            }
            MergeEngine::Versioned { column }
        }
        Some(v) if v == "aggregation" || v == "aggregate" => {
            MergeEngine::Aggregation { functions: aggregation_specs(schema, &key, options)? }
        }
        Some(v) => {
            return Err(invalid(format!(
                "option {MERGE_ENGINE:?} = {v:?}: must be first_row, versioned or aggregation (default: last row)"
            )))
        }
    };
    if !matches!(merge_engine, MergeEngine::Versioned { .. }) && opt(VERSION_COLUMN).is_some() {
        return Err(invalid(format!("option {VERSION_COLUMN:?} needs {MERGE_ENGINE:?} = versioned")));
    }
    if !matches!(merge_engine, MergeEngine::Aggregation { .. }) {
        if let Some(k) = options.keys().find(|k| k.starts_with("fields.")) {
            return Err(invalid(format!("option {k:?} needs {MERGE_ENGINE:?} = aggregation")));
        }
    }
    let delete_behavior = match opt(DELETE_BEHAVIOR).map(|v| v.to_ascii_uppercase()) {
        None => DeleteBehavior::Allow,
        Some(v) if v == "ALLOW" => DeleteBehavior::Allow,
        Some(v) if v == "IGNORE" => DeleteBehavior::Ignore,
        Some(v) if v == "DISABLE" => DeleteBehavior::Disable,
        Some(v) => return Err(invalid(format!("option {DELETE_BEHAVIOR:?} = {v:?}: must be ALLOW, IGNORE or DISABLE"))),
    };
    let changelog_image = match opt(CHANGELOG_IMAGE).map(|v| v.to_ascii_uppercase()) {
        None => ChangelogImage::Full,
        Some(v) if v == "FULL" => ChangelogImage::Full,
        Some(v) if v == "WAL" => ChangelogImage::Wal,
        Some(v) => return Err(invalid(format!("option {CHANGELOG_IMAGE:?} = {v:?}: must be FULL or WAL"))),
    };
    let auto_increment = match opt(AUTO_INCREMENT) {
        None => None,
        Some(v) => {
            let names: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            let [name] = names[..] else {
                return Err(invalid(format!("option {AUTO_INCREMENT:?} = {v:?}: name exactly one column")));
            };
            let column = schema.index_of(name).map_err(|_| invalid(format!("option {AUTO_INCREMENT:?} = {name:?}: no such column")))?;
            if key.contains(&column) {
                return Err(invalid(format!("option {AUTO_INCREMENT:?} = {name:?}: an auto-increment column cannot be a key column")));
            }
            if !matches!(schema.field(column).data_type(), DataType::Int32 | DataType::Int64) {
                return Err(invalid(format!(
                    "option {AUTO_INCREMENT:?} = {name:?}: type {} is not INT or BIGINT",
                    schema.field(column).data_type()
                )));
            }
            Some(column)
        }
    };
    let column_names = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok(PkSpec {
        key,
        declared_key: declared,
        bucket_key: bucket,
        prefix_len,
        merge_engine,
        delete_behavior,
        changelog_image,
        auto_increment,
        column_names,
    })
}

/// `fields.<col>.agg` and `fields.<col>.listagg.delimiter` for an aggregation table; columns
/// without a function use `last_value_ignore_nulls`. Key columns get `None`.
fn aggregation_specs(schema: &Schema, key: &[usize], options: &BTreeMap<String, String>) -> Result<Vec<Option<AggSpec>>> {
    let mut specs: Vec<Option<AggSpec>> = (0..schema.fields().len())
        .map(|i| (!key.contains(&i)).then(|| AggSpec { function: AggFunction::LastValueIgnoreNulls, delimiter: ",".into() }))
        .collect();
    let mut delimiters = Vec::new();
    for (k, v) in options.iter().filter(|(k, _)| k.starts_with("fields.")) {
        let rest = &k["fields.".len()..];
        let (column, setting) = if let Some(c) = rest.strip_suffix(".listagg.delimiter") {
            (c, "delimiter")
        } else if let Some(c) = rest.strip_suffix(".agg") {
            (c, "agg")
        } else {
            return Err(invalid(format!("unknown table option {k:?} (expected fields.<column>.agg or fields.<column>.listagg.delimiter)")));
        };
        let i = schema.index_of(column).map_err(|_| invalid(format!("option {k:?}: no column {column:?}")))?;
        if key.contains(&i) {
            return Err(invalid(format!("option {k:?}: {column:?} is a primary key column; only non-key columns aggregate")));
        }
        if setting == "delimiter" {
            delimiters.push((i, k, v.clone()));
            continue;
        }
        let function = AggFunction::parse(v).ok_or_else(|| {
            invalid(format!(
                "option {k:?} = {v:?}: unknown aggregation (sum, product, max, min, last_value, last_value_ignore_nulls, first_value, \
                 first_value_ignore_nulls, listagg, string_agg, bool_and, bool_or, rbm32, rbm64)"
            ))
        })?;
        let dt = schema.field(i).data_type();
        if !function.fits(dt) {
            return Err(invalid(format!("option {k:?} = {v:?}: {v} does not apply to column {column:?} of type {dt}")));
        }
        specs[i].as_mut().expect("non-key column").function = function;
    }
    for (i, k, delimiter) in delimiters {
        let spec = specs[i].as_mut().expect("non-key column");
        if spec.function != AggFunction::ListAgg {
            return Err(invalid(format!("option {k:?}: column {:?} does not aggregate with listagg/string_agg", schema.field(i).name())));
        }
        spec.delimiter = delimiter;
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, TimeUnit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("ds", DataType::Utf8, false),
            Field::new("order_id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("uv", DataType::Binary, true),
            Field::new("paid", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("uid", DataType::Int64, true),
        ])
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn check(pk: &[&str], bucket: &[&str], o: &[(&str, &str)]) -> Result<PkSpec> {
        validate(&schema(), &names(pk), &[], &names(bucket), &[false; 9], &opts(o))
    }

    #[test]
    fn given_bucket_key_prefix_when_validated_should_become_the_prefix_index() {
        let spec = check(&["user_id", "ds", "order_id"], &["user_id"], &[]).unwrap();
        assert_eq!(spec.prefix_len, Some(1));
        assert_eq!(spec.merge_engine, MergeEngine::LastRow);
        let whole = check(&["user_id", "ds"], &[], &[]).unwrap();
        assert_eq!((whole.bucket_key.clone(), whole.prefix_len), (vec![0, 1], None), "the default bucket key is the whole key");
        assert_eq!(check(&["user_id", "ds"], &["ds"], &[]).unwrap().prefix_len, None, "a subset that is not a prefix is no index");
    }

    #[test]
    fn given_aggregation_options_when_validated_should_type_every_column() {
        let spec = check(
            &["user_id"],
            &[],
            &[
                (MERGE_ENGINE, "aggregation"),
                ("fields.amount.agg", "sum"),
                ("fields.uv.agg", "rbm64"),
                ("fields.name.agg", "string_agg"),
                ("fields.name.listagg.delimiter", "|"),
            ],
        )
        .unwrap();
        let MergeEngine::Aggregation { functions } = spec.merge_engine else { panic!("aggregation") };
        assert_eq!(functions[0], None, "key columns do not aggregate");
        assert_eq!(functions[3].as_ref().unwrap().function, AggFunction::Sum);
        assert_eq!(functions[4].as_ref().unwrap().delimiter, "|");
        assert_eq!(functions[6].as_ref().unwrap().function, AggFunction::LastValueIgnoreNulls, "the default");
    }

    #[test]
    fn given_invalid_combinations_when_validated_should_name_the_culprit() {
        let cases: Vec<(Result<PkSpec>, &str)> = vec![
            (check(&["user_id", "nope"], &[], &[]), "nope"),
            (check(&["user_id"], &["ds"], &[]), "\"ds\" is not part of the primary key"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "aggregation"), ("fields.user_id.agg", "sum")]), "primary key column"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "aggregation"), ("fields.name.agg", "sum")]), "\"name\""),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "aggregation"), ("fields.paid.agg", "rbm32")]), "rbm32"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "aggregation"), ("fields.amount.agg", "median")]), "median"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "aggregation"), ("fields.amount.listagg.delimiter", ";")]), "listagg"),
            (check(&["user_id"], &[], &[("fields.amount.agg", "sum")]), "needs"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "versioned")]), VERSION_COLUMN),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "versioned"), (VERSION_COLUMN, "name")]), "not INT, BIGINT"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "versioned"), (VERSION_COLUMN, "user_id")]), "key column"),
            (check(&["user_id"], &[], &[(MERGE_ENGINE, "newest")]), "newest"),
            (check(&["user_id"], &[], &[(DELETE_BEHAVIOR, "sometimes")]), DELETE_BEHAVIOR),
            (check(&["user_id"], &[], &[(CHANGELOG_IMAGE, "HALF")]), CHANGELOG_IMAGE),
            (check(&["user_id"], &[], &[(AUTO_INCREMENT, "name")]), "not INT or BIGINT"),
            (check(&["user_id"], &[], &[(AUTO_INCREMENT, "uid,order_id")]), "exactly one"),
            (check(&["user_id"], &[], &[(AUTO_INCREMENT, "user_id")]), "key column"),
        ];
        for (outcome, culprit) in cases {
            let err = outcome.expect_err(culprit).to_string();
            assert!(err.contains(culprit), "expected {culprit:?} in: {err}");
        }
        let mut nullable = [false; 9];
        nullable[1] = true;
        let err = validate(&schema(), &names(&["user_id", "ds"]), &[], &[], &nullable, &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("\"ds\" is declared nullable"), "{err}");
    }

    #[test]
    fn given_versioned_and_other_options_when_validated_should_parse_them() {
        let spec = check(
            &["user_id"],
            &[],
            &[
                (MERGE_ENGINE, "versioned"),
                (VERSION_COLUMN, "ts"),
                (DELETE_BEHAVIOR, "ignore"),
                (CHANGELOG_IMAGE, "wal"),
                (AUTO_INCREMENT, "uid"),
            ],
        )
        .unwrap();
        assert_eq!(spec.merge_engine, MergeEngine::Versioned { column: 7 });
        assert_eq!(
            (spec.delete_behavior, spec.changelog_image, spec.auto_increment),
            (DeleteBehavior::Ignore, ChangelogImage::Wal, Some(8))
        );
        assert_eq!(check(&["user_id"], &[], &[(MERGE_ENGINE, "FIRST_ROW")]).unwrap().merge_engine, MergeEngine::FirstRow);
    }

    #[test]
    fn given_partitioned_keys_should_store_partition_keys_first_and_index_the_bucket_key_prefix() {
        let pk = names(&["user_id", "ds", "order_id"]);
        let spec = validate(&schema(), &pk, &names(&["ds"]), &names(&["user_id"]), &[false; 9], &BTreeMap::new()).unwrap();
        assert_eq!(spec.key, vec![1, 0, 2], "ds first, then the rest in declared order");
        assert_eq!(spec.bucket_key, vec![0]);
        assert_eq!(spec.prefix_len, Some(2), "prefix lookups take ds + user_id");
        let default_bucket = validate(&schema(), &pk, &names(&["ds"]), &[], &[false; 9], &BTreeMap::new()).unwrap();
        assert_eq!(default_bucket.bucket_key, vec![0, 2], "the bucket key defaults to the key without partition keys");
        assert_eq!(default_bucket.prefix_len, None);
        for (partitions, bucket, culprit) in [
            (vec!["amount"], vec![], "partition key column \"amount\" is not part of the primary key"),
            (vec!["ds"], vec!["ds"], "bucket key column \"ds\" is a partition key"),
            (vec!["user_id", "ds", "order_id"], vec![], "holds only partition keys"),
        ] {
            let err =
                validate(&schema(), &pk, &names(&partitions), &names(&bucket), &[false; 9], &BTreeMap::new()).unwrap_err().to_string();
            assert!(err.contains(culprit), "expected {culprit:?} in: {err}");
        }
    }
}
