//! Tables, batches and row comparisons shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type, UInt64Type};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use strom_flight_api::client::ScanBatch;
use strom_flight_api::{ColumnSpec, CountRequest, CreateDatabase, CreateTable, LogScan, StromClient};

/// A raw Flight client on a connection of its own, for requests the typed client never sends
/// (malformed ones) and for checking the wire itself. `endpoint` is `grpc://host:port`.
pub async fn raw_flight_client(endpoint: &str) -> FlightServiceClient<tonic::transport::Channel> {
    let uri = endpoint.replacen("grpc://", "http://", 1);
    let channel = tonic::transport::Endpoint::from_shared(uri.clone())
        .unwrap_or_else(|e| panic!("bad endpoint {uri}: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {uri}: {e:?}"));
    FlightServiceClient::new(channel)
}

/// A name no other test (or earlier run on a kept data dir) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub async fn create_database(client: &StromClient, name: &str) {
    let created = client
        .create_database(CreateDatabase { name: name.into(), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("create_database {name}: {e}"));
    assert!(created, "database {name} was new, so create_database must report created");
}

/// `events`: five columns of different kinds, hashed on `id` into `buckets` buckets.
pub fn events_table(database: &str, table: &str, buckets: u32) -> CreateTable {
    CreateTable {
        database: database.into(),
        table: table.into(),
        columns: vec![
            ColumnSpec::new("id", "BIGINT").not_null(),
            ColumnSpec::new("name", "STRING"),
            ColumnSpec::new("amount", "DOUBLE"),
            ColumnSpec::new("flag", "BOOLEAN"),
            ColumnSpec::new("ts", "TIMESTAMP(3)"),
        ],
        bucket_key: vec!["id".into()],
        bucket_num: Some(buckets),
        ..Default::default()
    }
}

/// The Arrow schema a client sends for [`events_table`].
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

/// Rows `first_id .. first_id + n` of [`events_table`]; every third name is null.
pub fn events_batch(first_id: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (first_id..first_id + n as i64).collect();
    let names: Vec<Option<String>> = ids.iter().map(|i| if i % 3 == 0 { None } else { Some(format!("name-{i}")) }).collect();
    let amounts: Vec<f64> = ids.iter().map(|i| *i as f64 * 1.5).collect();
    let flags: Vec<bool> = ids.iter().map(|i| i % 2 == 0).collect();
    let ts: Vec<i64> = ids.iter().map(|i| 1_700_000_000_000 + i).collect();
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(BooleanArray::from(flags)),
            Arc::new(TimestampMillisecondArray::from(ts)),
        ],
    )
    .expect("events batch")
}

/// `orders`: `PRIMARY KEY (user_id, ds, order_id)` with bucket key `user_id` in 2 buckets, the
/// seeds' shape for prefix lookups by user (partitioned by `ds` when a test sets
/// `partition_keys`).
pub fn orders_table(database: &str, table: &str) -> CreateTable {
    CreateTable {
        database: database.into(),
        table: table.into(),
        columns: vec![
            ColumnSpec::new("user_id", "BIGINT").not_null(),
            ColumnSpec::new("ds", "STRING").not_null(),
            ColumnSpec::new("order_id", "BIGINT").not_null(),
            ColumnSpec::new("amount", "DOUBLE"),
        ],
        primary_key: vec!["user_id".into(), "ds".into(), "order_id".into()],
        bucket_key: vec!["user_id".into()],
        bucket_num: Some(2),
        ..Default::default()
    }
}

/// `ledger`: every row says which writer sent it, in which batch (sequence), at which
/// position, so a scan can be checked against what the writers were told.
pub fn ledger_table(database: &str, table: &str, buckets: u32) -> CreateTable {
    CreateTable {
        database: database.into(),
        table: table.into(),
        columns: vec![
            ColumnSpec::new("writer", "BIGINT").not_null(),
            ColumnSpec::new("seq", "BIGINT").not_null(),
            ColumnSpec::new("row_no", "INT").not_null(),
            ColumnSpec::new("id", "BIGINT").not_null(),
            ColumnSpec::new("payload", "STRING"),
        ],
        bucket_key: vec!["id".into()],
        bucket_num: Some(buckets),
        ..Default::default()
    }
}

/// One ledger batch of `rows` rows for `(writer, seq)`; ids spread the rows over buckets.
pub fn ledger_batch(writer: i64, seq: i64, rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("writer", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("row_no", DataType::Int32, false),
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let row_no: Vec<i32> = (0..rows as i32).collect();
    let ids: Vec<i64> = row_no.iter().map(|r| writer * 1_000_003 + seq * 1_009 + *r as i64).collect();
    let payload: Vec<String> = row_no.iter().map(|r| format!("w{writer}-s{seq}-r{r}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![writer; rows])),
            Arc::new(Int64Array::from(vec![seq; rows])),
            Arc::new(Int32Array::from(row_no)),
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(payload)),
        ],
    )
    .expect("ledger batch")
}

/// Every row of the batches rendered as strings (one `Vec` per row), in scan order.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("displayable column")).collect();
        for row in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    out
}

/// [`rows`] sorted, for comparing contents regardless of bucket interleaving.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut r = rows(batches);
    r.sort();
    r
}

pub fn batches_of(scan: &[ScanBatch]) -> Vec<RecordBatch> {
    scan.iter().map(|b| b.batch.clone()).collect()
}

pub fn total_rows(scan: &[ScanBatch]) -> usize {
    scan.iter().map(|b| b.batch.num_rows()).sum()
}

pub fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// A log scan of the whole table, bounded at the current high watermark.
pub fn full_scan(database: &str, table: &str) -> LogScan {
    LogScan { database: database.into(), table: table.into(), ..Default::default() }
}

pub async fn count(client: &StromClient, database: &str, table: &str) -> u64 {
    client
        .count(CountRequest { database: database.into(), table: table.into(), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("count {database}.{table}: {e}"))
}

/// Reads an integer column (any of the widths the node may use for metadata columns) as i64.
pub fn int_column(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let column: &ArrayRef = batch.column_by_name(name).unwrap_or_else(|| panic!("column {name} missing in {:?}", batch.schema()));
    match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().values().to_vec(),
        DataType::UInt64 => column.as_primitive::<UInt64Type>().values().iter().map(|v| *v as i64).collect(),
        DataType::Int32 => column.as_primitive::<arrow_array::types::Int32Type>().values().iter().map(|v| *v as i64).collect(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().values().iter().map(|v| *v as i64).collect(),
        DataType::Timestamp(_, _) => {
            let c = arrow_cast::cast(column, &DataType::Int64).expect("timestamp to int");
            c.as_primitive::<Int64Type>().values().to_vec()
        }
        other => panic!("column {name} has type {other}, expected an integer"),
    }
}

/// Checks that each bucket's offsets (from `_bucket`/`_offset`) are exactly
/// `earliest[b] .. earliest[b] + n` with no gap and no repeat; returns rows per bucket.
pub fn assert_offsets_gap_free(batches: &[RecordBatch], earliest: &BTreeMap<u32, u64>) -> BTreeMap<u32, usize> {
    let mut per_bucket: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for batch in batches {
        let buckets = int_column(batch, strom_flight_api::BUCKET_COLUMN);
        let offsets = int_column(batch, strom_flight_api::OFFSET_COLUMN);
        for (b, o) in buckets.into_iter().zip(offsets) {
            per_bucket.entry(b as u32).or_default().push(o);
        }
    }
    let mut counts = BTreeMap::new();
    for (bucket, mut offsets) in per_bucket {
        offsets.sort_unstable();
        let start = *earliest.get(&bucket).unwrap_or(&0) as i64;
        let expected: Vec<i64> = (start..start + offsets.len() as i64).collect();
        if offsets != expected {
            let first_bad = offsets.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "bucket {bucket}: offsets are not gap-free from {start}: {} offsets, first mismatch at index {first_bad:?} ({:?})",
                offsets.len(),
                first_bad.map(|i| (offsets[i], expected[i]))
            );
        }
        counts.insert(bucket, offsets.len());
    }
    counts
}

/// A node with one database and an [`events_table`] holding `batches` batches of
/// `rows_per_batch` rows (ids `0..batches*rows_per_batch`), written by one idempotent writer.
pub struct EventsFixture {
    pub server: crate::TestServer,
    pub client: StromClient,
    pub database: String,
    pub table: String,
    pub written: Vec<RecordBatch>,
}

impl EventsFixture {
    pub async fn start(buckets: u32, batches: usize, rows_per_batch: usize) -> Self {
        let server = crate::TestServer::start().await;
        let client = server.client().await;
        let database = unique("db");
        let table = "events".to_string();
        create_database(&client, &database).await;
        let info = client.create_table(events_table(&database, &table, buckets)).await.expect("create_table");
        assert_eq!(info.bucket_num, buckets);
        let mut fixture = EventsFixture { server, client, database, table, written: Vec::new() };
        for i in 0..batches {
            fixture.append(events_batch((i * rows_per_batch) as i64, rows_per_batch)).await;
        }
        fixture
    }

    /// Appends one batch (acked) and remembers it.
    pub async fn append(&mut self, batch: RecordBatch) -> strom_flight_api::PutAck {
        let mut writer = self.client.append_writer(&self.database, &self.table, Default::default());
        let ack = writer.append(batch.clone()).await.expect("append");
        writer.close().await.expect("close writer");
        assert_eq!(ack.rows as usize, batch.num_rows());
        self.written.push(batch);
        ack
    }

    pub fn scan(&self) -> LogScan {
        full_scan(&self.database, &self.table)
    }

    pub async fn count(&self) -> u64 {
        count(&self.client, &self.database, &self.table).await
    }

    pub fn written_rows(&self) -> usize {
        self.written.iter().map(|b| b.num_rows()).sum()
    }

    pub async fn offsets(&self, spec: strom_flight_api::OffsetSpec) -> BTreeMap<u32, u64> {
        let request = strom_flight_api::ListOffsets {
            database: self.database.clone(),
            table: self.table.clone(),
            partition: None,
            buckets: None,
            spec,
        };
        let offsets = self.client.list_offsets(request).await.expect("list_offsets");
        offsets.into_iter().map(|o| (o.bucket, o.offset)).collect()
    }
}
