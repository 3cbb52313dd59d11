//! Catalog and metadata calls: `DoAction` with a JSON body, `GetSchema`, `GetFlightInfo`.

use arrow_flight::{Action, Criteria, FlightDescriptor, FlightInfo};
use arrow_schema::{Schema, SchemaRef};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::StromClient;
use crate::contract::{
    actions, AlterTable, BucketOffset, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition, DropTable, Health,
    ListOffsets, ListTables, PartitionInfo, TableInfo, TableRef, TableStats,
};
use crate::error::{from_status, Error, Result};

#[derive(Deserialize)]
struct Created {
    created: bool,
}

#[derive(Deserialize)]
struct Dropped {
    dropped: bool,
}

#[derive(Serialize)]
struct Empty {}

impl StromClient {
    /// Runs one action and returns the raw body of its (single) result. Every Strom action
    /// answers with exactly one `Result` message; an action that answers with none is a
    /// protocol error rather than an empty success, so a misbehaving node is noticed.
    pub async fn do_action_raw(&self, action_type: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        let mut client = self.inner.clone();
        let action = Action { r#type: action_type.to_string(), body: body.into() };
        let mut results = client.do_action(action).await.map_err(from_status)?.into_inner();
        let first = results
            .message()
            .await
            .map_err(from_status)?
            .ok_or_else(|| Error::Protocol(format!("action {action_type} returned no result")))?;
        // Drain so the call ends cleanly (and a late error status is not lost).
        while results.message().await.map_err(from_status)?.is_some() {}
        Ok(first.body.to_vec())
    }

    /// Runs one action with a typed body and decodes the typed answer.
    pub async fn do_action_json<B: Serialize, R: DeserializeOwned>(&self, action_type: &str, body: &B) -> Result<R> {
        let body = serde_json::to_vec(body)?;
        let answer = self.do_action_raw(action_type, body).await?;
        serde_json::from_slice(&answer).map_err(|e| {
            Error::Protocol(format!("action {action_type} answered {:?}, which does not decode: {e}", String::from_utf8_lossy(&answer)))
        })
    }

    /// `health`: liveness and version of the node.
    pub async fn health(&self) -> Result<Health> {
        self.do_action_json(actions::HEALTH, &Empty {}).await
    }

    /// `table_stats`: what the node's scans of one table sent since it started.
    pub async fn table_stats(&self, table: TableRef) -> Result<TableStats> {
        self.do_action_json(actions::TABLE_STATS, &table).await
    }

    /// `create_database`; returns whether it was created (false: it existed and
    /// `if_not_exists` was set).
    pub async fn create_database(&self, request: CreateDatabase) -> Result<bool> {
        let r: Created = self.do_action_json(actions::CREATE_DATABASE, &request).await?;
        Ok(r.created)
    }

    /// `drop_database`; returns whether it was dropped (false: absent and `if_exists`).
    pub async fn drop_database(&self, request: DropDatabase) -> Result<bool> {
        let r: Dropped = self.do_action_json(actions::DROP_DATABASE, &request).await?;
        Ok(r.dropped)
    }

    /// `list_databases`.
    pub async fn list_databases(&self) -> Result<Vec<String>> {
        self.do_action_json(actions::LIST_DATABASES, &Empty {}).await
    }

    /// `create_table`; returns the table as stored, with every default filled in.
    pub async fn create_table(&self, request: CreateTable) -> Result<TableInfo> {
        self.do_action_json(actions::CREATE_TABLE, &request).await
    }

    /// `drop_table`; returns whether it was dropped (false: absent and `if_exists`).
    pub async fn drop_table(&self, request: DropTable) -> Result<bool> {
        let r: Dropped = self.do_action_json(actions::DROP_TABLE, &request).await?;
        Ok(r.dropped)
    }

    /// `get_table`.
    pub async fn get_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        let body = TableRef { database: database.into(), table: table.into() };
        self.do_action_json(actions::GET_TABLE, &body).await
    }

    /// `list_tables`.
    pub async fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        self.do_action_json(actions::LIST_TABLES, &ListTables { database: database.into() }).await
    }

    /// `alter_table`; returns the table after the change.
    pub async fn alter_table(&self, request: AlterTable) -> Result<TableInfo> {
        self.do_action_json(actions::ALTER_TABLE, &request).await
    }

    /// `create_partition`; returns whether it was created (false: it existed and
    /// `if_not_exists` was set).
    pub async fn create_partition(&self, request: CreatePartition) -> Result<bool> {
        let r: Created = self.do_action_json(actions::CREATE_PARTITION, &request).await?;
        Ok(r.created)
    }

    /// `drop_partition` (its logs, KV rows and files); returns whether it was dropped.
    pub async fn drop_partition(&self, request: DropPartition) -> Result<bool> {
        let r: Dropped = self.do_action_json(actions::DROP_PARTITION, &request).await?;
        Ok(r.dropped)
    }

    /// `list_partitions` of a partitioned table, in name order.
    pub async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        let body = TableRef { database: database.into(), table: table.into() };
        self.do_action_json(actions::LIST_PARTITIONS, &body).await
    }

    /// `list_offsets`: earliest, latest (high watermark) or first offset at a timestamp,
    /// per bucket.
    pub async fn list_offsets(&self, request: ListOffsets) -> Result<Vec<BucketOffset>> {
        self.do_action_json(actions::LIST_OFFSETS, &request).await
    }

    /// `GetSchema` of `db.table` (PATH descriptor).
    pub async fn get_schema(&self, database: &str, table: &str) -> Result<SchemaRef> {
        let mut client = self.inner.clone();
        let result = client.get_schema(path_descriptor(database, table)).await.map_err(from_status)?.into_inner();
        let schema = Schema::try_from(&result)?;
        Ok(Arc::new(schema))
    }

    /// `GetFlightInfo` of `db.table`: schema, one endpoint per bucket, totals.
    pub async fn get_flight_info(&self, database: &str, table: &str) -> Result<FlightInfo> {
        let mut client = self.inner.clone();
        Ok(client.get_flight_info(path_descriptor(database, table)).await.map_err(from_status)?.into_inner())
    }

    /// `ListFlights`: one FlightInfo per table.
    pub async fn list_flights(&self) -> Result<Vec<FlightInfo>> {
        let mut client = self.inner.clone();
        let stream = client.list_flights(Criteria::default()).await.map_err(from_status)?.into_inner();
        stream.try_collect().await.map_err(from_status)
    }
}

/// The PATH descriptor `["db", "table"]` that names a table.
pub fn path_descriptor(database: &str, table: &str) -> FlightDescriptor {
    FlightDescriptor::new_path(vec![database.to_string(), table.to_string()])
}
