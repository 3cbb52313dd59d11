//! DoAction: a typed command enum parsed from the action type and its JSON body.

use crate::engine::StorageEngine;
use crate::error::{Error, Result};
use crate::flight::served::ServedStats;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use strom_flight_api::{
    actions, AlterTable, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition, DropTable, ListOffsets, ListTables,
    TableRef,
};

/// Every action of the contract, parsed.
#[derive(Debug)]
pub enum ActionCommand {
    CreateDatabase(CreateDatabase),
    DropDatabase(DropDatabase),
    ListDatabases,
    CreateTable(Box<CreateTable>),
    DropTable(DropTable),
    GetTable(TableRef),
    ListTables(ListTables),
    AlterTable(AlterTable),
    CreatePartition(CreatePartition),
    DropPartition(DropPartition),
    ListPartitions(TableRef),
    ListOffsets(ListOffsets),
    Health,
    TableStats(TableRef),
}

/// An empty body or `{}` for actions without arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn body<T: DeserializeOwned>(action: &str, bytes: &[u8]) -> Result<T> {
    let bytes = if bytes.iter().all(|b| b.is_ascii_whitespace()) { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("action {action:?}: invalid JSON body: {e}")))
}

impl ActionCommand {
    pub fn parse(action_type: &str, bytes: &[u8]) -> Result<Self> {
        Ok(match action_type {
            actions::CREATE_DATABASE => Self::CreateDatabase(body(action_type, bytes)?),
            actions::DROP_DATABASE => Self::DropDatabase(body(action_type, bytes)?),
            actions::LIST_DATABASES => {
                body::<Empty>(action_type, bytes)?;
                Self::ListDatabases
            }
            actions::CREATE_TABLE => Self::CreateTable(Box::new(body(action_type, bytes)?)),
            actions::DROP_TABLE => Self::DropTable(body(action_type, bytes)?),
            actions::GET_TABLE => Self::GetTable(body(action_type, bytes)?),
            actions::LIST_TABLES => Self::ListTables(body(action_type, bytes)?),
            actions::ALTER_TABLE => Self::AlterTable(body(action_type, bytes)?),
            actions::CREATE_PARTITION => Self::CreatePartition(body(action_type, bytes)?),
            actions::DROP_PARTITION => Self::DropPartition(body(action_type, bytes)?),
            actions::LIST_PARTITIONS => Self::ListPartitions(body(action_type, bytes)?),
            actions::LIST_OFFSETS => Self::ListOffsets(body(action_type, bytes)?),
            actions::HEALTH => {
                body::<Empty>(action_type, bytes)?;
                Self::Health
            }
            actions::TABLE_STATS => Self::TableStats(body(action_type, bytes)?),
            other => {
                let known: Vec<&str> = actions::ALL.iter().map(|(n, _)| *n).collect();
                return Err(Error::invalid(format!("unknown action {other:?}; known actions: {}", known.join(", "))));
            }
        })
    }

    /// Runs the command; the result is the JSON body of the single Result message. `served`
    /// holds the scan counters `table_stats` reports (reset when their table is dropped, so a
    /// table created again under the name starts from zero).
    pub fn run(self, engine: &dyn StorageEngine, served: &ServedStats) -> Result<serde_json::Value> {
        Ok(match self {
            Self::CreateDatabase(req) => json!({ "created": engine.create_database(&req)? }),
            Self::DropDatabase(req) => {
                let dropped = engine.drop_database(&req)?;
                served.forget_database(&req.name);
                json!({ "dropped": dropped })
            }
            Self::ListDatabases => json!(engine.list_databases()),
            Self::CreateTable(req) => to_json(&engine.create_table(&req)?),
            Self::DropTable(req) => {
                let dropped = engine.drop_table(&req)?;
                served.forget_table(&req.database, &req.table);
                json!({ "dropped": dropped })
            }
            Self::GetTable(req) => to_json(&engine.get_table(&req.database, &req.table)?),
            Self::ListTables(req) => json!(engine.list_tables(&req.database)?),
            Self::AlterTable(req) => to_json(&engine.alter_table(&req)?),
            Self::CreatePartition(req) => json!({ "created": engine.create_partition(&req)? }),
            Self::DropPartition(req) => json!({ "dropped": engine.drop_partition(&req)? }),
            Self::ListPartitions(req) => to_json(&engine.list_partitions(&req.database, &req.table)?),
            Self::ListOffsets(req) => to_json(&engine.list_offsets(&req)?),
            Self::Health => to_json(&engine.health()),
            Self::TableStats(req) => {
                engine.get_table(&req.database, &req.table)?; // NOT_FOUND for a table that does not exist
                to_json(&served.snapshot(&req.database, &req.table))
            }
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_unknown_action_when_parsed_should_list_known_ones() {
        let err = ActionCommand::parse("create_tabel", b"{}").unwrap_err().to_string();
        assert!(err.contains("create_tabel") && err.contains("create_table"), "{err}");
    }

    #[test]
    fn given_bad_bodies_when_parsed_should_be_invalid_argument() {
        assert!(matches!(ActionCommand::parse("create_database", b"{\"nam\": 1}"), Err(Error::InvalidArgument(_))));
        assert!(matches!(ActionCommand::parse("health", b"{\"x\": 1}"), Err(Error::InvalidArgument(_))));
        assert!(matches!(ActionCommand::parse("health", b""), Ok(ActionCommand::Health)));
        assert!(matches!(ActionCommand::parse("list_databases", b"  "), Ok(ActionCommand::ListDatabases)));
    }
}
