//! The model side of the primary-key crash test: the two tables, the writer roles, the values
//! they write, how each merge engine merges them, and the ledger of what was sent and
//! acknowledged (the oracle every restart is checked against).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use strom_flight_api::{ColumnSpec, CreateTable, PutAck};

use super::BUCKETS;

// ---------------------------------------------------------------------------------------------
// Tables, writers and values
// ---------------------------------------------------------------------------------------------

/// The two tables under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tbl {
    /// `totals`: `table.merge-engine = aggregation`, `total` and `cnt` summed, `last` the last
    /// value; FULL changelog image (`-U` before every `+U`); upserts and deletes.
    Totals,
    /// `profiles`: last-row engine, two writers doing partial updates of disjoint columns
    /// (`a`, `b`); WAL changelog image (no `-U`).
    Profiles,
}

pub(crate) const TABLES: [Tbl; 2] = [Tbl::Totals, Tbl::Profiles];

impl Tbl {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tbl::Totals => "totals",
            Tbl::Profiles => "profiles",
        }
    }

    pub(crate) fn columns(self) -> &'static [&'static str] {
        match self {
            Tbl::Totals => &["id", "total", "cnt", "last"],
            Tbl::Profiles => &["id", "a", "b"],
        }
    }

    /// Columns that hold the write id of the write that last set them.
    pub(crate) fn id_columns(self) -> &'static [usize] {
        match self {
            Tbl::Totals => &[3],
            Tbl::Profiles => &[1, 2],
        }
    }

    /// Whether updates log `-U` before `+U` (`table.changelog.image = FULL`).
    pub(crate) fn full_image(self) -> bool {
        self == Tbl::Totals
    }

    /// Keys are drawn from `0..key_space()`, so writers collide on keys all the time.
    pub(crate) fn key_space(self) -> i64 {
        match self {
            Tbl::Totals => 200,
            Tbl::Profiles => 120,
        }
    }

    pub(crate) fn create(self, database: &str) -> CreateTable {
        let (columns, options): (Vec<ColumnSpec>, Vec<(&str, &str)>) = match self {
            Tbl::Totals => (
                vec![
                    ColumnSpec::new("id", "BIGINT").not_null(),
                    ColumnSpec::new("total", "BIGINT"),
                    ColumnSpec::new("cnt", "BIGINT"),
                    ColumnSpec::new("last", "STRING"),
                ],
                vec![
                    ("table.merge-engine", "aggregation"),
                    ("fields.total.agg", "sum"),
                    ("fields.cnt.agg", "sum"),
                    ("fields.last.agg", "last_value"),
                    ("table.delete.behavior", "ALLOW"),
                    ("table.changelog.image", "FULL"),
                ],
            ),
            Tbl::Profiles => (
                vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("a", "STRING"), ColumnSpec::new("b", "STRING")],
                vec![("table.changelog.image", "WAL")],
            ),
        };
        let mut options: BTreeMap<String, String> = options.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        options.insert("table.log.durability".into(), "sync".into());
        CreateTable {
            database: database.into(),
            table: self.name().into(),
            columns,
            primary_key: vec!["id".into()],
            bucket_num: Some(BUCKETS),
            options,
            ..Default::default()
        }
    }
}

/// What a writer does. Each cycle starts one writer per entry of [`ROLES`], with fresh ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Full-row upserts into `totals`: `total` random in 1..=1000, `cnt` 1, `last` the write id.
    Summer,
    /// Deletes from `totals`, only of keys known to exist (see [`Ledger::pick_deletes`]).
    Deleter,
    /// Partial updates of `profiles.a`.
    ProfileA,
    /// Partial updates of `profiles.b`.
    ProfileB,
}

pub(crate) const ROLES: [Role; 6] = [Role::Summer, Role::Summer, Role::Summer, Role::Deleter, Role::ProfileA, Role::ProfileB];

impl Role {
    pub(crate) fn table(self) -> Tbl {
        match self {
            Role::Summer | Role::Deleter => Tbl::Totals,
            Role::ProfileA | Role::ProfileB => Tbl::Profiles,
        }
    }

    pub(crate) fn target_columns(self) -> Option<Vec<String>> {
        match self {
            Role::ProfileA => Some(vec!["a".into()]),
            Role::ProfileB => Some(vec!["b".into()]),
            Role::Summer | Role::Deleter => None,
        }
    }

    pub(crate) fn max_rows(self) -> usize {
        match self {
            Role::Summer => 24,
            Role::Deleter => 3,
            Role::ProfileA | Role::ProfileB => 16,
        }
    }
}

/// One value of a row; rows are full width, in table column order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Str(String),
}

pub(crate) type Row = Vec<Val>;

impl Val {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Val::Int(v) => *v,
            other => panic!("expected an integer, got {other:?}"),
        }
    }
}

/// (writer, sequence, row in the batch): one row of one batch.
pub(crate) type WriteKey = (i64, i64, usize);

pub(crate) fn write_id(writer: i64, seq: i64, row: usize) -> String {
    format!("w{writer}-s{seq}-r{row}")
}

pub(crate) fn parse_write_id(s: &str) -> Option<WriteKey> {
    let rest = s.strip_prefix('w')?;
    let (w, rest) = rest.split_once("-s")?;
    let (seq, row) = rest.split_once("-r")?;
    Some((w.parse().ok()?, seq.parse().ok()?, row.parse().ok()?))
}

/// The rows of a new upsert batch (deletes are picked from the ledger instead).
pub(crate) fn random_rows(role: Role, writer: i64, seq: i64, rng: &mut StdRng) -> Vec<Row> {
    let n = rng.gen_range(1..=role.max_rows());
    (0..n)
        .map(|r| {
            let key = Val::Int(rng.gen_range(0..role.table().key_space()));
            let id = Val::Str(write_id(writer, seq, r));
            match role {
                Role::Summer => vec![key, Val::Int(rng.gen_range(1..=1000)), Val::Int(1), id],
                Role::ProfileA => vec![key, id, Val::Null],
                Role::ProfileB => vec![key, Val::Null, id],
                Role::Deleter => unreachable!("deletes are picked from the ledger"),
            }
        })
        .collect()
}

/// What a writer of `role` sends for `rows`: the key and the columns it writes.
pub(crate) fn to_record_batch(role: Role, rows: &[Row]) -> RecordBatch {
    let ints = |c: usize| -> ArrayRef { Arc::new(rows.iter().map(|r| r[c].int()).collect::<Int64Array>()) };
    let strings = |c: usize| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| match &r[c] {
                    Val::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<StringArray>(),
        )
    };
    let columns: Vec<(&str, ArrayRef)> = match role {
        Role::Summer => vec![("id", ints(0)), ("total", ints(1)), ("cnt", ints(2)), ("last", strings(3))],
        Role::Deleter => vec![("id", ints(0))],
        Role::ProfileA => vec![("id", ints(0)), ("a", strings(1))],
        Role::ProfileB => vec![("id", ints(0)), ("b", strings(2))],
    };
    RecordBatch::try_from_iter(columns).expect("batch")
}

/// Reads `columns` of a batch as rows (BIGINT and STRING columns only).
pub(crate) fn val_rows(batch: &RecordBatch, columns: &[&str]) -> Vec<Row> {
    let arrays: Vec<&ArrayRef> =
        columns.iter().map(|c| batch.column_by_name(c).unwrap_or_else(|| panic!("column {c} missing in {:?}", batch.schema()))).collect();
    (0..batch.num_rows())
        .map(|i| {
            arrays
                .iter()
                .map(|a| {
                    if a.is_null(i) {
                        return Val::Null;
                    }
                    match a.data_type() {
                        DataType::Int64 => Val::Int(a.as_primitive::<Int64Type>().value(i)),
                        DataType::Utf8 => Val::Str(a.as_string::<i32>().value(i).to_string()),
                        other => panic!("unexpected column type {other}"),
                    }
                })
                .collect()
        })
        .collect()
}

/// The table's merge rule applied to one write of `role` on the stored row `old`.
pub(crate) fn merge(role: Role, old: Option<&Row>, write: &Row) -> Row {
    match (role, old) {
        (_, None) => write.clone(),
        (Role::Summer, Some(o)) => {
            vec![o[0].clone(), Val::Int(o[1].int() + write[1].int()), Val::Int(o[2].int() + write[2].int()), write[3].clone()]
        }
        (Role::ProfileA, Some(o)) => vec![o[0].clone(), write[1].clone(), o[2].clone()],
        (Role::ProfileB, Some(o)) => vec![o[0].clone(), o[1].clone(), write[2].clone()],
        (Role::Deleter, Some(_)) => unreachable!("deletes do not merge"),
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger: what the writers sent and what the node acknowledged
// ---------------------------------------------------------------------------------------------

pub(crate) struct Batch {
    pub(crate) role: Role,
    pub(crate) rows: Vec<Row>,
    /// Ledger clock when the batch was handed to the writer.
    pub(crate) sent_at: u64,
    pub(crate) ack: Option<PutAck>,
}

/// Delete bookkeeping of one `totals` key.
#[derive(Default)]
pub(crate) struct KeyState {
    /// The key certainly exists when the next write reaches it: an acknowledged upsert was sent
    /// after the last delete of it was acknowledged, and no delete of it is in flight.
    pub(crate) live: bool,
    pub(crate) deleting: bool,
    pub(crate) delete_acked_at: u64,
}

#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) batches: BTreeMap<(i64, i64), Batch>,
    /// Every writer id with its role.
    pub(crate) roles: BTreeMap<i64, Role>,
    /// Ticks at every send and every ack, to order them.
    pub(crate) clock: u64,
    pub(crate) keys: HashMap<i64, KeyState>,
    /// Per `totals` key, the delete batches that deleted it, in send order (= log order, since
    /// at most one delete of a key is in flight).
    pub(crate) deletes: HashMap<i64, Vec<(i64, i64)>>,
    pub(crate) errors: Vec<String>,
}

pub(crate) type Shared = Arc<Mutex<Ledger>>;

impl Ledger {
    pub(crate) fn record_sent(&mut self, writer: i64, seq: i64, role: Role, rows: Vec<Row>) {
        self.clock += 1;
        if role == Role::Deleter {
            for row in &rows {
                let key = row[0].int();
                let state = self.keys.entry(key).or_default();
                state.live = false;
                state.deleting = true;
                self.deletes.entry(key).or_default().push((writer, seq));
            }
        }
        let previous = self.batches.insert((writer, seq), Batch { role, rows, sent_at: self.clock, ack: None });
        assert!(previous.is_none(), "batch ({writer}, {seq}) sent twice as a new batch");
    }

    pub(crate) fn record_ack(&mut self, writer: i64, seq: i64, ack: PutAck) {
        self.clock += 1;
        let clock = self.clock;
        let batch = self.batches.get_mut(&(writer, seq)).expect("acked batch is in the ledger");
        if ack.sequence != Some(seq) || ack.rows as usize != batch.rows.len() {
            self.errors.push(format!("writer {writer} seq {seq}: ack {ack:?} does not match the batch of {} rows", batch.rows.len()));
        }
        if batch.ack.is_some() {
            self.errors.push(format!("writer {writer} seq {seq}: acknowledged twice"));
        }
        batch.ack = Some(ack);
        match batch.role {
            Role::Summer => {
                for row in &batch.rows {
                    let state = self.keys.entry(row[0].int()).or_default();
                    if !state.deleting && batch.sent_at > state.delete_acked_at {
                        state.live = true;
                    }
                }
            }
            Role::Deleter => {
                for row in &batch.rows {
                    let state = self.keys.entry(row[0].int()).or_default();
                    state.deleting = false;
                    state.delete_acked_at = clock;
                }
            }
            Role::ProfileA | Role::ProfileB => {}
        }
    }

    /// Up to `max` distinct keys that certainly exist and have no delete in flight.
    pub(crate) fn pick_deletes(&self, rng: &mut StdRng, max: usize) -> Vec<i64> {
        let mut candidates: Vec<i64> = self.keys.iter().filter(|(_, s)| s.live && !s.deleting).map(|(k, _)| *k).collect();
        candidates.sort_unstable();
        let n = rng.gen_range(1..=max);
        candidates.choose_multiple(rng, n).copied().collect()
    }

    /// Between cycles nothing is in flight and the state is known: exactly these keys exist.
    pub(crate) fn reset_keys(&mut self, live: impl Iterator<Item = i64>) {
        self.clock += 1;
        self.keys.clear();
        for key in live {
            self.keys.insert(key, KeyState { live: true, deleting: false, delete_acked_at: self.clock });
        }
    }
}
