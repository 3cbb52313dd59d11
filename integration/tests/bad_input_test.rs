//! The bad-input matrix: every malformed or impossible request gets the contract's gRPC code
//! with a message naming the culprit, and a rejected write leaves the table unchanged.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{Action, FlightData, FlightDescriptor, PutResult, Ticket};
use arrow_schema::{DataType, Field, Schema};
use futures::{StreamExt, TryStreamExt};
use strom_flight_api::{AlterTable, Code, ColumnSpec, CountRequest, CreateDatabase, Error, LogScan, StromClient, WriteCommand, WriteKind};
use strom_integration::fixtures::*;
use strom_integration::TestServer;

fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, mentions: &[&str], what: &str) {
    let err = match result {
        Ok(v) => panic!("{what}: expected {code:?}, got success {v:?}"),
        Err(e) => e,
    };
    assert_eq!(err.code(), code, "{what}: {err}");
    let text = err.to_string();
    for m in mentions {
        assert!(text.contains(m), "{what}: the message should mention {m:?}: {text}");
    }
}

/// The status of a request sent with a raw Flight client (see [`raw_flight_client`]).
fn status_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: tonic::Code, what: &str) -> tonic::Status {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got success {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

/// A DoGet answer read to the end; errors can come with the headers or in the stream.
async fn do_get_raw(node: &Node, ticket: &[u8]) -> Result<usize, tonic::Status> {
    let mut flight = raw_flight_client(node.server.endpoint()).await;
    let stream = flight.do_get(Ticket::new(ticket.to_vec())).await?.into_inner();
    let messages: Vec<FlightData> = stream.try_collect().await?;
    Ok(messages.len())
}

/// Sends raw FlightData on a DoPut and collects the PutResults (or the first error).
async fn do_put_raw(node: &Node, messages: Vec<FlightData>) -> Result<Vec<PutResult>, tonic::Status> {
    let mut flight = raw_flight_client(node.server.endpoint()).await;
    let stream = flight.do_put(futures::stream::iter(messages)).await?.into_inner();
    stream.try_collect().await
}

/// Encodes a batch as [schema with CMD descriptor, record batch messages...] without splitting.
async fn put_messages(command: &WriteCommand, batch: RecordBatch) -> Vec<FlightData> {
    let descriptor = FlightDescriptor::new_cmd(serde_json::to_vec(command).unwrap());
    FlightDataEncoderBuilder::new()
        .with_max_flight_data_size(usize::MAX)
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::once(async { Ok(batch) }))
        .try_collect()
        .await
        .unwrap()
}

struct Node {
    server: TestServer,
    client: StromClient,
    db: String,
}

async fn node_with_events(args: &[&str]) -> Node {
    let server = TestServer::builder().args(args.iter().copied()).start().await;
    let client = server.client().await;
    let db = unique("bad");
    create_database(&client, &db).await;
    client.create_table(events_table(&db, "events", 4)).await.unwrap();
    let mut w = client.append_writer(&db, "events", Default::default());
    w.append(events_batch(0, 10)).await.unwrap();
    w.close().await.unwrap();
    Node { server, client, db }
}

impl Node {
    async fn assert_count(&self, expected: u64, after: &str) {
        assert_eq!(count(&self.client, &self.db, "events").await, expected, "the table changed after {after}");
    }

    async fn append(&self, batch: RecordBatch) -> Result<strom_flight_api::PutAck, Error> {
        let mut w = self.client.append_writer(&self.db, "events", Default::default());
        let result = w.append(batch).await;
        drop(w);
        result
    }
}

#[tokio::test]
async fn given_garbage_or_empty_ticket_when_do_get_should_be_invalid_argument() {
    let node = node_with_events(&[]).await;
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty"),
        (b"\x00\x9f garbage", "JSON"),
        (b"[1, 2]", "object"),
        (br#"{"foo": 1}"#, "foo"),
        (br#"{"scan": "sideways", "database": "d", "table": "t"}"#, "sideways"),
        (br#"{"scan": "log", "database": "d", "table": "t", "colums": ["a"]}"#, "colums"),
    ];
    for (ticket, mention) in cases {
        let what = format!("ticket {:?}", String::from_utf8_lossy(ticket));
        let status = status_code(do_get_raw(&node, ticket).await, tonic::Code::InvalidArgument, &what);
        assert!(status.message().contains(mention), "{what}: message should mention {mention:?}: {}", status.message());
    }
}

#[tokio::test]
async fn given_unknown_action_or_bad_body_when_do_action_should_be_invalid_argument() {
    let node = node_with_events(&[]).await;
    assert_code(node.client.do_action_raw("frobnicate", b"{}".to_vec()).await, Code::InvalidArgument, &["frobnicate"], "unknown action");
    assert_code(node.client.do_action_raw("create_database", b"{not json".to_vec()).await, Code::InvalidArgument, &[], "bad JSON body");
    assert_code(
        node.client.do_action_raw("create_table", br#"{"database": "x", "table": "t", "colums": []}"#.to_vec()).await,
        Code::InvalidArgument,
        &["colums"],
        "unknown field in create_table",
    );
    let mut flight = raw_flight_client(node.server.endpoint()).await;
    let raw = flight.do_action(Action { r#type: String::new(), body: Default::default() }).await;
    status_code(raw.map(|_| ()), tonic::Code::InvalidArgument, "empty action type");
}

#[tokio::test]
async fn given_unknown_table_or_database_when_used_should_be_not_found() {
    let node = node_with_events(&[]).await;
    let c = &node.client;
    let db = node.db.as_str();
    assert_code(c.collect_log(full_scan(db, "nope")).await, Code::NotFound, &["nope"], "scan of unknown table");
    assert_code(c.collect_log(full_scan("nodb", "events")).await, Code::NotFound, &["nodb"], "scan in unknown database");
    let count = CountRequest { database: db.into(), table: "nope".into(), ..Default::default() };
    assert_code(c.count(count).await, Code::NotFound, &["nope"], "count of unknown table");
    assert_code(c.get_table(db, "nope").await, Code::NotFound, &["nope"], "get_table");
    assert_code(c.list_tables("nodb").await, Code::NotFound, &["nodb"], "list_tables");
    assert_code(c.get_schema(db, "nope").await, Code::NotFound, &["nope"], "get_schema");
    assert_code(c.get_flight_info(db, "nope").await, Code::NotFound, &["nope"], "get_flight_info");
    let alter = AlterTable { database: db.into(), table: "nope".into(), ..Default::default() };
    assert_code(c.alter_table(alter).await, Code::NotFound, &["nope"], "alter_table");
    let mut w = c.append_writer(db, "nope", Default::default());
    assert_code(w.append(events_batch(0, 3)).await, Code::NotFound, &["nope"], "append to unknown table");
    let drop_db = strom_flight_api::DropDatabase { name: "nodb".into(), ..Default::default() };
    assert_code(c.drop_database(drop_db).await, Code::NotFound, &["nodb"], "drop_database");
}

#[tokio::test]
async fn given_unknown_bucket_when_scanned_should_be_rejected_naming_the_bucket() {
    let node = node_with_events(&[]).await;
    let scan = LogScan { buckets: Some(vec![99]), ..full_scan(&node.db, "events") };
    let err = node.client.collect_log(scan).await.unwrap_err();
    assert!(matches!(err.code(), Code::InvalidArgument | Code::NotFound), "{err}");
    assert!(err.to_string().contains("99"), "the message names the bucket: {err}");
    let scan = LogScan { from: strom_flight_api::StartPosition::Offset { offset: 1_000_000 }, ..full_scan(&node.db, "events") };
    let err = node.client.collect_log(scan).await.unwrap_err();
    assert!(matches!(err.code(), Code::InvalidArgument | Code::OutOfRange), "offset beyond the end: {err}");
}

#[tokio::test]
async fn given_batch_not_matching_table_schema_when_appended_should_be_invalid_argument_and_write_nothing() {
    let node = node_with_events(&[]).await;
    let good = events_batch(100, 5);

    // An extra column.
    let extra: ArrayRef = Arc::new(Int64Array::from(vec![1; 5]));
    let mut columns = good.columns().to_vec();
    columns.push(extra);
    let mut fields: Vec<Field> = good.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("surprise", DataType::Int64, true));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    assert_code(node.append(batch).await, Code::InvalidArgument, &["surprise"], "extra column");
    node.assert_count(10, "an extra column").await;

    // A missing column.
    let batch = good.project(&[0, 1, 3, 4]).unwrap();
    assert_code(node.append(batch).await, Code::InvalidArgument, &["amount"], "missing column");
    node.assert_count(10, "a missing column").await;

    // An incompatible type: text for BOOLEAN.
    let mut columns = good.columns().to_vec();
    columns[3] = Arc::new(StringArray::from(vec!["yes"; 5]));
    let mut fields: Vec<Field> = good.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[3] = Field::new("flag", DataType::Utf8, true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    assert_code(node.append(batch).await, Code::InvalidArgument, &["flag"], "incompatible type");
    node.assert_count(10, "an incompatible type").await;

    // A null in the NOT NULL id column, sent as a nullable field.
    let mut columns = good.columns().to_vec();
    columns[0] = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4), Some(5)]));
    let mut fields: Vec<Field> = good.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[0] = Field::new("id", DataType::Int64, true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns).unwrap();
    assert_code(node.append(batch).await, Code::InvalidArgument, &["\"id\"", "row 2"], "null in NOT NULL column");
    node.assert_count(10, "a null in a NOT NULL column").await;

    // A value that a narrower type cannot hold unchanged is rejected too (safe cast).
    let big: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
    let schema = Arc::new(Schema::new(vec![
        Field::new("writer", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("row_no", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]));
    node.client.create_table(ledger_table(&node.db, "ledger", 2)).await.unwrap();
    let mut row_no = vec![1i64; 5];
    row_no[3] = i64::MAX;
    let payload: ArrayRef = Arc::new(StringArray::from(vec!["p"; 5]));
    let batch = RecordBatch::try_new(schema, vec![big.clone(), big.clone(), Arc::new(Int64Array::from(row_no)), big, payload]).unwrap();
    let mut w = node.client.append_writer(&node.db, "ledger", Default::default());
    assert_code(w.append(batch).await, Code::InvalidArgument, &["row_no"], "value out of range for INT");
    assert_eq!(count(&node.client, &node.db, "ledger").await, 0);

    // Lenient spelling is accepted: a nullable field without nulls for NOT NULL, and a
    // narrower integer type for BIGINT.
    let mut columns = good.columns().to_vec();
    columns[0] = Arc::new(Int32Array::from(vec![100, 101, 102, 103, 104]));
    fields[0] = Field::new("id", DataType::Int32, true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let ack = node.append(batch).await.expect("a compatible batch is accepted");
    assert_eq!(ack.rows, 5);
    node.assert_count(15, "a compatible batch").await;
}

#[tokio::test]
async fn given_existing_database_or_table_when_created_again_should_be_already_exists() {
    let node = node_with_events(&[]).await;
    let c = &node.client;
    let again = CreateDatabase { name: node.db.clone(), ..Default::default() };
    assert_code(c.create_database(again.clone()).await, Code::AlreadyExists, &[&node.db], "create_database twice");
    let created = c.create_database(CreateDatabase { if_not_exists: true, ..again }).await.unwrap();
    assert!(!created, "if_not_exists on an existing database reports created=false");
    assert_code(c.create_table(events_table(&node.db, "events", 4)).await, Code::AlreadyExists, &["events"], "create_table twice");
    let mut request = events_table(&node.db, "events", 4);
    request.if_not_exists = true;
    let info = c.create_table(request).await.expect("if_not_exists returns the existing table");
    assert_eq!(info.table, "events");
    node.assert_count(10, "a duplicate create_table").await;
}

#[tokio::test]
async fn given_bad_option_or_type_when_creating_table_should_be_invalid_argument_naming_it() {
    let node = node_with_events(&[]).await;
    let c = &node.client;
    let mut bad_option = events_table(&node.db, "t1", 2);
    bad_option.options.insert("table.log.ttl.typo".into(), "7 d".into());
    assert_code(c.create_table(bad_option).await, Code::InvalidArgument, &["table.log.ttl.typo"], "unknown option");

    let mut bad_value = events_table(&node.db, "t2", 2);
    bad_value.options.insert("table.log.arrow.compression.type".into(), "BROTLI".into());
    assert_code(c.create_table(bad_value).await, Code::InvalidArgument, &["table.log.arrow.compression.type"], "bad option value");

    let mut bad_type = events_table(&node.db, "t3", 2);
    bad_type.columns.push(ColumnSpec::new("weird", "BIGINTEGER"));
    assert_code(c.create_table(bad_type).await, Code::InvalidArgument, &["BIGINTEGER"], "unknown type");

    let mut bad_key = events_table(&node.db, "t4", 2);
    bad_key.bucket_key = vec!["missing_col".into()];
    assert_code(c.create_table(bad_key).await, Code::InvalidArgument, &["missing_col"], "bucket key not a column");

    let bad_buckets = events_table(&node.db, "t5", 0);
    assert_code(c.create_table(bad_buckets).await, Code::InvalidArgument, &["bucket"], "zero buckets");

    assert_eq!(c.list_tables(&node.db).await.unwrap(), vec!["events".to_string()], "no rejected table was created");
}

#[tokio::test]
async fn given_message_over_server_limit_when_put_should_be_resource_exhausted_and_write_nothing() {
    let node = node_with_events(&["--max-message-bytes", "1048576"]).await;
    node.client.create_table(ledger_table(&node.db, "ledger", 2)).await.unwrap();
    // One 4 MiB record-batch message: 4 rows of 1 MiB payload.
    let rows = 4;
    let payload = "x".repeat(1024 * 1024);
    let schema = Arc::new(Schema::new(vec![
        Field::new("writer", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("row_no", DataType::Int32, false),
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1; rows])),
            Arc::new(Int64Array::from(vec![0; rows])),
            Arc::new(Int32Array::from((0..rows as i32).collect::<Vec<_>>())),
            Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(vec![payload.as_str(); rows])),
        ],
    )
    .unwrap();
    let command = WriteCommand::append(node.db.clone(), "ledger");
    let messages = put_messages(&command, batch).await;
    assert_eq!(messages.len(), 2, "schema + one data message");
    assert!(messages[1].data_body.len() >= 4 * 1024 * 1024);
    status_code(do_put_raw(&node, messages).await, tonic::Code::ResourceExhausted, "4 MiB message over a 1 MiB limit");
    assert_eq!(count(&node.client, &node.db, "ledger").await, 0, "nothing of the oversized message was written");
    // The node keeps serving normal-sized writes.
    let mut w = node.client.append_writer(&node.db, "ledger", Default::default());
    w.append(ledger_batch(1, 0, 10)).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(count(&node.client, &node.db, "ledger").await, 10);
}

#[tokio::test]
async fn given_upsert_or_delete_on_log_table_when_put_should_be_failed_precondition() {
    let node = node_with_events(&[]).await;
    for kind in [WriteKind::Upsert, WriteKind::Delete] {
        let command = WriteCommand { write: kind, ..WriteCommand::append(node.db.clone(), "events") };
        let messages = put_messages(&command, events_batch(500, 3)).await;
        status_code(do_put_raw(&node, messages).await, tonic::Code::FailedPrecondition, &format!("{kind:?} on a log table"));
        node.assert_count(10, &format!("a rejected {kind:?}")).await;
    }
}

#[tokio::test]
async fn given_client_disconnect_mid_put_when_node_keeps_serving_should_show_only_whole_batches() {
    let node = node_with_events(&[]).await;
    // A separate raw connection that is torn down mid-stream.
    let command = WriteCommand { writer_id: Some(9), sequence: Some(0), ..WriteCommand::append(node.db.clone(), "events") };
    let (tx, rx) = futures::channel::mpsc::unbounded::<FlightData>();
    let batches: Vec<RecordBatch> = (0..4).map(|i| events_batch(1_000 + i * 10, 10)).collect();
    let mut first = put_messages(&command, batches[0].clone()).await;
    let schema = first.remove(0);
    tx.unbounded_send(schema).unwrap();
    tx.unbounded_send(first.remove(0)).unwrap();
    tx.unbounded_send(put_messages(&command, batches[1].clone()).await.remove(1)).unwrap();
    let mut flight = raw_flight_client(node.server.endpoint()).await;
    let mut acks = flight.do_put(rx).await.unwrap().into_inner();
    for _ in 0..2 {
        acks.next().await.expect("an ack").expect("acked");
    }
    // Half of the stream is acknowledged; send the rest and vanish without ending the stream.
    tx.unbounded_send(put_messages(&command, batches[2].clone()).await.remove(1)).unwrap();
    tx.unbounded_send(put_messages(&command, batches[3].clone()).await.remove(1)).unwrap();
    drop(acks);
    drop(flight);
    std::mem::forget(tx); // the request side never ends cleanly

    // The node still serves, and shows whole batches only: the acked two, maybe the others.
    let health = node.client.health().await.expect("the node still serves");
    assert_eq!(health.status, "ok", "{health:?}");
    // Messages the node received before the reset may still be written for a moment: wait
    // until count and scan agree twice in a row.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut previous = None;
    let (n, scan) = loop {
        let n = count(&node.client, &node.db, "events").await;
        let scan = node.client.collect_log(full_scan(&node.db, "events")).await.unwrap();
        if total_rows(&scan) as u64 == n && previous == Some(n) {
            break (n, scan);
        }
        assert!(tokio::time::Instant::now() < deadline, "count and scan never settled (count {n}, scan {})", total_rows(&scan));
        previous = Some(n);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!([30, 40, 50].contains(&n), "10 earlier rows + 2 acked batches + 0..2 unacked whole batches, got {n}");
    let ids: Vec<i64> = scan.iter().flat_map(|b| int_column(&b.batch, "id")).collect();
    for (i, _) in batches.iter().enumerate() {
        let lo = 1_000 + i as i64 * 10;
        let present = ids.iter().filter(|id| (lo..lo + 10).contains(*id)).count();
        assert!(present == 0 || present == 10, "batch {i} is partially visible: {present} of 10 rows");
        if i < 2 {
            assert_eq!(present, 10, "acked batch {i} is visible");
        }
    }
    // The same writer can resume from the sequence after what is stored.
    let mut resume = node.client.append_writer(
        &node.db,
        "events",
        strom_flight_api::client::AppendWriterOptions { writer_id: Some(9), sequence: 0, ..Default::default() },
    );
    for b in &batches {
        resume.append(b.clone()).await.unwrap();
    }
    resume.close().await.unwrap();
    node.assert_count(50, "resending the disconnected stream (no duplicates)").await;
}
