//! The native methods of `io.strom.flink.client.internal.StromNative`: one `extern "system"`
//! function per Java method, each a thin shell that resolves handles, converts arguments and
//! calls the blocking facade of `strom-flight-api`.
//!
//! Every body runs inside `EnvUnowned::with_env` (which catches panics) and is resolved with
//! [`ThrowStromException`], so an error becomes a typed Java exception and a panic a
//! `StromException(INTERNAL)`; nothing unwinds into the JVM.
//!
//! Threading: these functions are called on Java threads, which are never tokio workers, so
//! the facade's blocking calls run there directly (`Handle::block_on`) while the facade's own
//! runtime (threads `strom-client-N`, one small runtime per endpoint: shared.rs) drives the IO. Async
//! results complete Java futures from those runtime threads (see completion.rs).

use std::sync::LazyLock;
use std::time::Duration;

use jni::objects::{JClass, JLongArray, JObject, JString};
use jni::sys::{jboolean, jint, jlong, jstring};
use jni::{Env, EnvUnowned};
use serde::Deserialize;
use serde_json::Value;
use strom_flight_api::blocking;
use strom_flight_api::{CountKind, CountRequest, LogScan, LookupOptions, SnapshotScan, WriteKind, WriterOptions};

use crate::cdata::{export_batch, export_batch_array, export_schema, import_batch};
use crate::completion::JavaCompletion;
use crate::errors::{BridgeError, BridgeResult, ThrowStromException};
use crate::handles::{HandleKind, Registry};
use crate::objects::{JniLookuper, JniWriter};
use crate::scanner::{block_on, log_batch, snapshot_batch, BatchOrigin, Polled, PollingScanner};
use crate::shared::SharedClients;

static CONNECTIONS: LazyLock<Registry<Connection>> = LazyLock::new(|| Registry::new(HandleKind::Connection));
static SHARED_CLIENTS: LazyLock<SharedClients<blocking::StromClient>> = LazyLock::new(SharedClients::new);

/// What a connection handle holds: the endpoint's shared client (see shared.rs).
struct Connection {
    endpoint: String,
    client: blocking::StromClient,
}

impl std::ops::Deref for Connection {
    type Target = blocking::StromClient;

    fn deref(&self) -> &blocking::StromClient {
        &self.client
    }
}

impl Drop for Connection {
    /// Runs when the handle is closed and no call on it is running any more.
    fn drop(&mut self) {
        // The last user's client is dropped here, outside the shared map's lock; writers,
        // scanners and lookupers opened from it hold their own clones of the runtime.
        drop(SHARED_CLIENTS.release(&self.endpoint));
    }
}
static WRITERS: LazyLock<Registry<JniWriter>> = LazyLock::new(|| Registry::new(HandleKind::Writer));
static SCANNERS: LazyLock<Registry<PollingScanner>> = LazyLock::new(|| Registry::new(HandleKind::Scanner));
static LOOKUPERS: LazyLock<Registry<JniLookuper>> = LazyLock::new(|| Registry::new(HandleKind::Lookuper));

/// Decoded batches a scanner reads ahead of Java.
const SCAN_BUFFER: usize = 4;
/// `poll`'s verdict in `origin[0]` (Java's `StromScanner`): nothing within the timeout (or a
/// wake-up), a batch (`origin[1..]` says where from), the end of a bounded scan.
const POLLED_NOTHING: jlong = 0;
const POLLED_BATCH: jlong = 1;
const POLLED_END: jlong = 2;

fn string(env: &Env<'_>, value: &JString<'_>, what: &str) -> BridgeResult<String> {
    if value.is_null() {
        return Err(BridgeError::Argument(format!("{what} is null")));
    }
    Ok(value.try_to_string(env)?)
}

fn java_string(env: &mut Env<'_>, value: &str) -> BridgeResult<jstring> {
    Ok(JString::new(env, value)?.into_raw())
}

/// Options of `openWriter`, as JSON from Java.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriterSpec {
    #[serde(default)]
    kind: Option<WriteKind>,
    #[serde(default)]
    target_columns: Option<Vec<String>>,
    #[serde(default)]
    partition: Option<String>,
    #[serde(default)]
    writer_id: Option<i64>,
    #[serde(default)]
    sequence: Option<i64>,
    #[serde(default)]
    max_in_flight: Option<usize>,
}

/// Options of `openLookuper`, as JSON from Java.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookuperSpec {
    #[serde(default)]
    prefix: bool,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    partition: Option<String>,
    #[serde(default)]
    insert_if_not_exists: bool,
    #[serde(default)]
    max_in_flight: Option<usize>,
    /// `LookupOptions::answer_timeout` in milliseconds; 0 waits forever, absent keeps the default.
    #[serde(default)]
    answer_timeout_ms: Option<u64>,
}

impl LookuperSpec {
    fn into_options(self) -> LookupOptions {
        let mut options = LookupOptions {
            columns: self.columns,
            partition: self.partition,
            insert_if_not_exists: self.insert_if_not_exists,
            ..LookupOptions::default()
        };
        if let Some(max_in_flight) = self.max_in_flight {
            options.max_in_flight = max_in_flight.max(1);
        }
        if let Some(millis) = self.answer_timeout_ms {
            options.answer_timeout = (millis > 0).then(|| std::time::Duration::from_millis(millis));
        }
        options
    }
}

fn parse_json<T: for<'de> Deserialize<'de> + Default>(text: Option<String>, what: &str) -> BridgeResult<T> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(T::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| BridgeError::Argument(format!("{what} {text}: {e}"))),
    }
}

fn optional_string(env: &Env<'_>, value: &JString<'_>) -> BridgeResult<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(value.try_to_string(env)?))
}

// --- connection and catalog ----------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_connect<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    endpoint: JString<'local>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let endpoint = string(env, &endpoint, "endpoint")?;
        let client = SHARED_CLIENTS.acquire(&endpoint, || blocking::StromClient::connect(&endpoint))?;
        Ok(CONNECTIONS.insert(Connection { endpoint, client }))
    })
    .resolve::<ThrowStromException>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_serverVersion<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
) -> jstring {
    env.with_env(|env| -> BridgeResult<jstring> {
        let client = CONNECTIONS.get(connection)?;
        java_string(env, client.server_version())
    })
    .resolve::<ThrowStromException>()
}

/// Any action of the Flight contract: `type` and a JSON body in, the JSON answer out. The
/// Java client layer builds the bodies (docs/protocol.md); new actions need no new native.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_action<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    action_type: JString<'local>,
    body_json: JString<'local>,
) -> jstring {
    env.with_env(|env| -> BridgeResult<jstring> {
        let client = CONNECTIONS.get(connection)?;
        let action_type = string(env, &action_type, "action type")?;
        let body: Value =
            parse_json::<Option<Value>>(optional_string(env, &body_json)?, "action body")?.unwrap_or(Value::Object(Default::default()));
        let answer: Value = client.do_action_json(&action_type, &body)?;
        java_string(env, &answer.to_string())
    })
    .resolve::<ThrowStromException>()
}

/// The node's count (`{"count": "rows"}` when `rows`, else `{"count": "log"}`) of a table, or
/// of one partition when `partition` is not null: current rows of a primary-key table, records
/// of a log table.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_count<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    database: JString<'local>,
    table: JString<'local>,
    partition: JString<'local>,
    rows: jboolean,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let client = CONNECTIONS.get(connection)?;
        let request = CountRequest {
            kind: if rows { CountKind::Rows } else { CountKind::Log },
            database: string(env, &database, "database")?,
            table: string(env, &table, "table")?,
            partition: optional_string(env, &partition)?,
            buckets: None,
        };
        let count = client.count(request)?;
        jlong::try_from(count).map_err(|_| BridgeError::Argument(format!("count {count} does not fit a Java long")))
    })
    .resolve::<ThrowStromException>()
}

/// Exports the Arrow schema of `db.table` into a Java-allocated `ArrowSchema`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_tableSchema<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    database: JString<'local>,
    table: JString<'local>,
    schema_address: jlong,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let client = CONNECTIONS.get(connection)?;
        let (database, table) = (string(env, &database, "database")?, string(env, &table, "table")?);
        let schema = client.get_schema(&database, &table)?;
        unsafe { export_schema(&schema, schema_address) }
    })
    .resolve::<ThrowStromException>()
}

/// Closing a connection drops the registry's client; writers, scanners and lookupers opened
/// from it keep the runtime alive until they are closed too.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_closeConnection<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        drop(CONNECTIONS.remove(connection)?);
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

// --- writers -------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_openWriter<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    database: JString<'local>,
    table: JString<'local>,
    options_json: JString<'local>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let client = CONNECTIONS.get(connection)?;
        let (database, table) = (string(env, &database, "database")?, string(env, &table, "table")?);
        let spec: WriterSpec = parse_json(optional_string(env, &options_json)?, "writer options")?;
        let mut options = WriterOptions { writer_id: spec.writer_id, partition: spec.partition, ..WriterOptions::default() };
        if let Some(sequence) = spec.sequence {
            options.sequence = sequence;
        }
        if let Some(max_in_flight) = spec.max_in_flight {
            options.max_in_flight = max_in_flight.max(1);
        }
        let writer = client.table_writer(&database, &table, spec.kind.unwrap_or(WriteKind::Append), spec.target_columns, options);
        Ok(WRITERS.insert(JniWriter::new(writer)))
    })
    .resolve::<ThrowStromException>()
}

/// Writes one batch and blocks until it is durable; returns the ack JSON
/// (`{"rows", "buckets": [{"bucket", "partition"?, "base_offset", "count"}], ...}`). The schema
/// struct is 0 when the batch has the schema Java sent before under `schema_id` ([`JniWriter`]).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_write<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    writer: jlong,
    array_address: jlong,
    schema_address: jlong,
    schema_id: jint,
) -> jstring {
    env.with_env(|env| -> BridgeResult<jstring> {
        let writer = WRITERS.get(writer)?;
        let batch = unsafe { writer.import(array_address, schema_address, schema_id)? };
        let ack = writer.writer.write(batch)?;
        java_string(env, &serde_json::to_string(&ack)?)
    })
    .resolve::<ThrowStromException>()
}

/// Sends one batch and returns once it is on its way (blocking only while the writer's
/// in-flight window is full: backpressure); `completion` gets the ack JSON once durable.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_writeAsync<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    writer: jlong,
    array_address: jlong,
    schema_address: jlong,
    schema_id: jint,
    completion: JObject<'local>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let completion = JavaCompletion::new(env, &completion)?;
        let writer = WRITERS.get(writer)?;
        let batch = unsafe { writer.import(array_address, schema_address, schema_id)? };
        let ack = writer.writer.write_unconfirmed(batch)?;
        ack.on_complete(move |result| match result.map_err(BridgeError::from).and_then(|ack| Ok(serde_json::to_string(&ack)?)) {
            Ok(json) => completion.succeed(Some(json)),
            Err(e) => completion.fail(&e),
        });
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_flush<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    writer: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> { Ok(WRITERS.get(writer)?.writer.flush()?) }).resolve::<ThrowStromException>()
}

/// Flushes and ends the writer's stream; a second close is a no-op.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_closeWriter<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    writer: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        match WRITERS.remove(writer)? {
            Some(writer) => Ok(writer.writer.close()?),
            None => Ok(()),
        }
    })
    .resolve::<ThrowStromException>()
}

// --- scanners ------------------------------------------------------------------------------

/// Starts a scan from a ticket of the contract: `{"scan": "log", ...}` or
/// `{"scan": "snapshot", ...}`. Request errors (unknown table) are thrown here.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_openScanner<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    ticket_json: JString<'local>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let client = CONNECTIONS.get(connection)?;
        let ticket = string(env, &ticket_json, "scan ticket")?;
        let mut ticket: serde_json::Map<String, Value> = serde_json::from_str(&ticket)?;
        let scanner = match ticket.remove("scan").as_ref().and_then(Value::as_str) {
            Some("log") => {
                let scan: LogScan = serde_json::from_value(Value::Object(ticket))?;
                let stream = block_on(client.as_async().runtime(), client.as_async().scan_log(scan))??;
                PollingScanner::start(client.as_async().runtime().clone(), Some(client.client.clone()), stream, SCAN_BUFFER, log_batch)
            }
            Some("snapshot") => {
                let scan: SnapshotScan = serde_json::from_value(Value::Object(ticket))?;
                let stream = block_on(client.as_async().runtime(), client.as_async().scan_snapshot(scan))??;
                PollingScanner::start(client.as_async().runtime().clone(), Some(client.client.clone()), stream, SCAN_BUFFER, snapshot_batch)
            }
            other => return Err(BridgeError::Argument(format!("scan ticket needs \"scan\": \"log\" or \"snapshot\", got {other:?}"))),
        };
        Ok(SCANNERS.insert(scanner))
    })
    .resolve::<ThrowStromException>()
}

/// Waits up to `timeout_millis` for the next batch. `origin[0]` says what came: nothing in
/// time (or `wakeup` was called), a batch — exported into the two structs, `origin[1..6]` its
/// bucket and offsets (`BatchOrigin::longs`), the return value its partition or null — or the
/// end of a bounded scan (the structs are left untouched).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_poll<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    scanner: jlong,
    timeout_millis: jlong,
    array_address: jlong,
    schema_address: jlong,
    java_has_schema: jboolean,
    origin: JLongArray<'local>,
) -> jstring {
    env.with_env(|env| -> BridgeResult<jstring> {
        if origin.is_null() || origin.len(env)? < 1 + BatchOrigin::LONGS {
            return Err(BridgeError::Argument(format!("poll needs an origin array of {} longs", 1 + BatchOrigin::LONGS)));
        }
        let scanner = SCANNERS.get(scanner)?;
        match scanner.poll(Duration::from_millis(timeout_millis.max(0) as u64))? {
            Polled::Nothing => {
                origin.set_region(env, 0, &[POLLED_NOTHING])?;
                Ok(std::ptr::null_mut())
            }
            Polled::End => {
                origin.set_region(env, 0, &[POLLED_END])?;
                Ok(std::ptr::null_mut())
            }
            Polled::Batch(polled) => {
                // The schema struct is filled only when Java's copy is missing or stale; Java
                // tells the two cases apart by the struct's `release` (set or null).
                let schema = polled.batch.schema();
                let with_schema = scanner.needs_schema(&schema, java_has_schema);
                unsafe { export_batch_array(polled.batch, array_address, with_schema.then_some(schema_address))? };
                if with_schema {
                    scanner.exported(schema);
                }
                let mut longs = [POLLED_BATCH; 1 + BatchOrigin::LONGS];
                longs[1..].copy_from_slice(&polled.origin.longs());
                origin.set_region(env, 0, &longs)?;
                match &polled.origin.partition {
                    Some(partition) => java_string(env, partition),
                    None => Ok(std::ptr::null_mut()),
                }
            }
        }
    })
    .resolve::<ThrowStromException>()
}

/// Makes a running (or the next) `poll` return `null` at once; safe from any thread.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_wakeup<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    scanner: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        SCANNERS.get(scanner)?.wakeup();
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

/// Cancels the scan (the only way to stop a `follow` scan); a second close is a no-op.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_closeScanner<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    scanner: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        if let Some(scanner) = SCANNERS.remove(scanner)? {
            // A poll blocked on another thread returns at once instead of waiting out its timeout.
            scanner.wakeup();
        }
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

// --- lookupers -----------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_openLookuper<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    connection: jlong,
    database: JString<'local>,
    table: JString<'local>,
    options_json: JString<'local>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let client = CONNECTIONS.get(connection)?;
        let (database, table) = (string(env, &database, "database")?, string(env, &table, "table")?);
        let spec: LookuperSpec = parse_json(optional_string(env, &options_json)?, "lookuper options")?;
        let prefix = spec.prefix;
        let options = spec.into_options();
        let lookuper =
            if prefix { client.prefix_lookuper(&database, &table, options) } else { client.lookuper(&database, &table, options) };
        Ok(LOOKUPERS.insert(JniLookuper::new(lookuper)))
    })
    .resolve::<ThrowStromException>()
}

/// Looks up the key batch and blocks; the answer (`_key_index` first, then the returned
/// columns) is exported into the two result structs, the schema only when its id is not
/// `answer_schema_held` (schemas.rs). Key batches carry their schema as writes do (`keys_schema`
/// 0: the one Java sent under `keys_schema_id`). Returns the answer's schema id.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the JNI signature: two structs each way plus their schema ids
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_lookup<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    lookuper: jlong,
    keys_array: jlong,
    keys_schema: jlong,
    keys_schema_id: jint,
    result_array: jlong,
    result_schema: jlong,
    answer_schema_held: jint,
) -> jint {
    env.with_env(|_| -> BridgeResult<jint> {
        let lookuper = LOOKUPERS.get(lookuper)?;
        let keys = unsafe { lookuper.keys.import(keys_array, keys_schema, keys_schema_id)? };
        let answer = lookuper.lookuper.lookup(keys)?;
        unsafe { lookuper.answers.export(answer, result_array, result_schema, answer_schema_held) }
    })
    .resolve::<ThrowStromException>()
}

/// Submits the key batch and returns at once; when the answer arrives it is exported into
/// the result structs (which Java keeps alive until then) as `lookup` does, and `completion`
/// succeeds with the answer's schema id (decimal). Answers of one lookuper complete in
/// submission order.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the JNI signature, as `lookup`'s plus the completion
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_lookupAsync<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    lookuper: jlong,
    keys_array: jlong,
    keys_schema: jlong,
    keys_schema_id: jint,
    result_array: jlong,
    result_schema: jlong,
    answer_schema_held: jint,
    completion: JObject<'local>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let completion = JavaCompletion::new(env, &completion)?;
        if result_array == 0 || result_schema == 0 {
            return Err(BridgeError::Argument("a result struct address is 0".into()));
        }
        let lookuper = LOOKUPERS.get(lookuper)?;
        let keys = unsafe { lookuper.keys.import(keys_array, keys_schema, keys_schema_id)? };
        let answer = lookuper.lookuper.submit(keys)?;
        let answers = lookuper.answers.clone();
        answer.on_complete(move |result| {
            let exported = result
                .map_err(BridgeError::from)
                .and_then(|batch| unsafe { answers.export(batch, result_array, result_schema, answer_schema_held) });
            match exported {
                Ok(id) => completion.succeed(Some(id.to_string())),
                Err(e) => completion.fail(&e),
            }
        });
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_closeLookuper<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    lookuper: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        match LOOKUPERS.remove(lookuper)? {
            Some(lookuper) => Ok(lookuper.lookuper.close()?),
            None => Ok(()),
        }
    })
    .resolve::<ThrowStromException>()
}

// --- diagnostics ---------------------------------------------------------------------------

/// Open objects per kind as JSON, for leak checks in tests and for operators.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_openHandles<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
) -> jstring {
    env.with_env(|env| -> BridgeResult<jstring> {
        let counts = serde_json::json!({
            "connections": CONNECTIONS.len(),
            "shared_clients": SHARED_CLIENTS.len(),
            "writers": WRITERS.len(),
            "scanners": SCANNERS.len(),
            "lookupers": LOOKUPERS.len(),
        });
        java_string(env, &counts.to_string())
    })
    .resolve::<ThrowStromException>()
}

/// Panics on purpose, so a test can prove a panic reaches Java as an exception instead of
/// aborting the JVM.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_panicForTesting<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    message: JString<'local>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let message = string(env, &message, "message")?;
        panic!("{message}");
    })
    .resolve::<ThrowStromException>()
}

/// Imports a batch from Java and exports the same batch back, so a test can check both
/// directions of the C Data Interface (every type, nulls, nesting) without a node.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_strom_flink_client_internal_StromNative_roundTripForTesting<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    in_array: jlong,
    in_schema: jlong,
    out_array: jlong,
    out_schema: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        let batch = unsafe { import_batch(in_array, in_schema)? };
        unsafe { export_batch(batch, out_array, out_schema) }
    })
    .resolve::<ThrowStromException>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_writer_options_json_when_parsed_should_fill_the_spec_and_refuse_unknown_keys() {
        let spec: WriterSpec = parse_json(
            Some(r#"{"kind":"upsert","target_columns":["id","c"],"partition":"2024","max_in_flight":4}"#.into()),
            "writer options",
        )
        .unwrap();
        assert_eq!(spec.kind, Some(WriteKind::Upsert));
        assert_eq!(spec.target_columns.as_deref(), Some(&["id".to_string(), "c".to_string()][..]));
        assert_eq!((spec.partition.as_deref(), spec.max_in_flight), (Some("2024"), Some(4)));

        let err = parse_json::<WriterSpec>(Some(r#"{"kind":"append","max_inflight":4}"#.into()), "writer options").unwrap_err();
        let java = err.to_java();
        assert_eq!(java.status, Some("INVALID_ARGUMENT"));
        assert!(java.message.contains("max_inflight"), "the typo is named: {}", java.message);
    }

    #[test]
    fn given_no_or_blank_options_when_parsed_should_use_defaults() {
        let spec: LookuperSpec = parse_json(None, "lookuper options").unwrap();
        assert!(!spec.prefix && spec.columns.is_none());
        let spec: LookuperSpec = parse_json(Some("  ".into()), "lookuper options").unwrap();
        assert!(!spec.insert_if_not_exists);
        let spec: LookuperSpec = parse_json(Some(r#"{"prefix":true,"columns":["a"]}"#.into()), "lookuper options").unwrap();
        assert!(spec.prefix);
        assert_eq!(spec.into_options().answer_timeout, LookupOptions::default().answer_timeout, "absent: the default");
    }

    #[test]
    fn given_answer_timeout_in_lookuper_options_when_converted_should_set_it_or_turn_it_off_at_zero() {
        let spec: LookuperSpec = parse_json(Some(r#"{"answer_timeout_ms":1500}"#.into()), "lookuper options").unwrap();
        assert_eq!(spec.into_options().answer_timeout, Some(std::time::Duration::from_millis(1500)));
        let spec: LookuperSpec = parse_json(Some(r#"{"answer_timeout_ms":0}"#.into()), "lookuper options").unwrap();
        assert_eq!(spec.into_options().answer_timeout, None);
    }
}
