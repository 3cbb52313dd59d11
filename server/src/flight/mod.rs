//! The Arrow Flight front door: parses and validates requests, calls the `StorageEngine`
//! through its API (`crate::engine`, nothing below it), frames the encoded batches it returns,
//! and maps errors to gRPC status codes (through the single `From<Error> for Status` in
//! `status.rs`).

pub mod actions;
mod decode;
pub mod doexchange;
pub mod doget;
pub mod doput;
pub mod served;
mod status;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod zero_copy;

use crate::engine::StorageEngine;
use crate::error::Error;
use actions::ActionCommand;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use arrow_ipc::writer::IpcWriteOptions;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

pub struct StromFlightService {
    engine: Arc<dyn StorageEngine>,
    write_permits: Arc<Semaphore>,
    max_message_bytes: usize,
    /// Key batches of one DoExchange stream looked up at once (`server.lookup_pipeline_depth`).
    lookup_pipeline_depth: usize,
    served: Arc<served::ServedStats>,
}

impl StromFlightService {
    pub fn new(engine: Arc<dyn StorageEngine>, max_inflight_write_bytes: usize, max_message_bytes: usize) -> Self {
        let permits = max_inflight_write_bytes.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Self {
            engine,
            write_permits: Arc::new(Semaphore::new(permits)),
            max_message_bytes,
            lookup_pipeline_depth: crate::config::DEFAULT_LOOKUP_PIPELINE_DEPTH,
            served: Arc::default(),
        }
    }

    /// Up to `depth` key batches of one DoExchange stream looked up at once (at least 1).
    pub fn with_lookup_pipeline_depth(mut self, depth: usize) -> Self {
        self.lookup_pipeline_depth = depth.max(1);
        self
    }
}

/// The Flight service as the node serves it: tonic's generated server over
/// [`StromFlightService`] with `max_message_bytes` as its decoding limit, and DoGet served by
/// [`zero_copy::ZeroCopyDoGet`] (batch bodies not copied). Encoded messages may be up to
/// `max_encoding_bytes` (scans send stored batches whole).
pub fn flight_service(
    engine: Arc<dyn StorageEngine>,
    max_inflight_write_bytes: usize,
    max_message_bytes: usize,
    max_encoding_bytes: usize,
    lookup_pipeline_depth: usize,
) -> zero_copy::ZeroCopyDoGet<FlightServiceServer<StromFlightService>> {
    let service = StromFlightService::new(engine.clone(), max_inflight_write_bytes, max_message_bytes)
        .with_lookup_pipeline_depth(lookup_pipeline_depth);
    let served = service.served.clone();
    let server =
        FlightServiceServer::new(service).max_decoding_message_size(max_message_bytes).max_encoding_message_size(max_encoding_bytes);
    zero_copy::ZeroCopyDoGet::new(server, engine, served, max_message_bytes, max_encoding_bytes)
}

#[tonic::async_trait]
impl FlightService for StromFlightService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = doget::FlightDataStream;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    /// Compares contract versions (no authentication in v1). The client's first message
    /// carries its version in `protocol_version`: 0 means "unspecified" (plain Flight clients
    /// such as pyarrow send it) and is accepted; any other version but ours is refused with
    /// FAILED_PRECONDITION naming both. The answer carries our version and a JSON payload
    /// `{"contract_version", "server_version"}`.
    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        let ours = strom_flight_api::CONTRACT_VERSION;
        let theirs = request.into_inner().message().await?.map_or(0, |first| first.protocol_version);
        if theirs != 0 && theirs != ours {
            return Err(Status::failed_precondition(format!(
                "the client speaks Strom contract version {theirs}, this node (strom {}) speaks contract version {ours}: \
                 upgrade the older side",
                env!("CARGO_PKG_VERSION")
            )));
        }
        let info = strom_flight_api::HandshakeInfo { contract_version: ours, server_version: env!("CARGO_PKG_VERSION").to_string() };
        let payload = serde_json::to_vec(&info).map_err(|e| Status::internal(format!("handshake payload: {e}")))?;
        let response = HandshakeResponse { protocol_version: ours, payload: payload.into() };
        Ok(Response::new(futures::stream::once(async { Ok(response) }).boxed()))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let engine = self.engine.clone();
        let infos: Vec<Result<FlightInfo, Status>> = engine
            .all_tables()
            .into_iter()
            .map(|t| {
                doget::flight_info(engine.as_ref(), &strom_flight_api::TableRef { database: t.database, table: t.table })
                    .map_err(Status::from)
            })
            .collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let table = doget::table_of(request.get_ref())?;
        Ok(Response::new(doget::flight_info(self.engine.as_ref(), &table)?))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("PollFlightInfo: Strom's flight infos are immediate; use GetFlightInfo"))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let table = doget::table_of(request.get_ref())?;
        let schema = self.engine.table_schema(&table.database, &table.table)?;
        let result = SchemaResult::try_from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default())).map_err(Error::from)?;
        Ok(Response::new(result))
    }

    /// Reached only without [`flight_service`]'s wrapper, which answers DoGet itself.
    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        Ok(Response::new(doget::flight_data(doget::do_get(self.engine.as_ref(), &self.served, request.get_ref()).await?)))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let ctx = doput::PutContext {
            engine: self.engine.clone(),
            permits: self.write_permits.clone(),
            max_message_bytes: self.max_message_bytes,
        };
        let stream = doput::do_put(ctx, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn do_exchange(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        let stream =
            doexchange::do_exchange(self.engine.clone(), request.into_inner(), self.max_message_bytes, self.lookup_pipeline_depth).await?;
        Ok(Response::new(stream))
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        let command = ActionCommand::parse(&action.r#type, &action.body)?;
        let engine = self.engine.clone();
        let served = self.served.clone();
        // Catalog changes fsync files: keep them off the async workers.
        let value = tokio::task::spawn_blocking(move || command.run(engine.as_ref(), &served)).await.map_err(status::task_failed)??;
        let body = serde_json::to_vec(&value).expect("JSON value serializes");
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(futures::stream::once(async { Ok(result) }).boxed()))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let types: Vec<Result<ActionType, Status>> = strom_flight_api::actions::ALL
            .iter()
            .map(|(name, description)| Ok(ActionType { r#type: name.to_string(), description: description.to_string() }))
            .collect();
        Ok(Response::new(futures::stream::iter(types).boxed()))
    }
}
