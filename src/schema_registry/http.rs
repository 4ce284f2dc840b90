//! The REST API, Confluent's paths, bodies, error bodies and content type. Handlers are thin:
//! they decode the request, call [`Registry`] and shape its answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{self, Access};
use super::error::RegistryError;
use super::formats::SUPPORTED;
use super::forward::{self, Forwarder, ToLeader};
use super::metrics::RequestCounts;
use super::registry::{NewSchema, Registry, VersionSpec};
use super::state::{Compatibility, Mode, Reference, SchemaType, Version};

/// What Confluent answers with; clients send it, `application/json` or nothing.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct Service {
    pub registry: Registry,
    pub counts: RequestCounts,
    /// Named in `/v1/metadata/id`.
    pub kafka_cluster_id: String,
    pub access: Access,
    pub forwarder: Forwarder,
}

type Shared = State<Arc<Service>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, RegistryError>;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/v1/metadata/id", get(metadata_id))
        .route("/schemas", get(schemas))
        .route(
            "/schemas/types",
            get(|| async {
                ok(json!(SUPPORTED
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()))
            }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/config",
            get(global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found") })
        // The last layer added runs first: count, authenticate and authorize, forward to the
        // leader what is not served here, wait until the topic has been read.
        .layer(middleware::from_fn_with_state(service.clone(), ready))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            forward::forward,
        ))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            access::guard,
        ))
        .layer(middleware::from_fn_with_state(service.clone(), count))
        .with_state(service)
}

/// Holds each request until the registry has read the schemas topic after start.
async fn ready(State(service): Shared, request: Request, next: Next) -> Response {
    match service.registry.wait_caught_up().await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// Counts each request by its route and status, for `/metrics`.
async fn count(State(service): Shared, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    service
        .counts
        .add(&method, &endpoint, response.status().as_u16());
    response
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!("schema registry: {self}");
        }
        let mut response = error_body(status, self.code(), &self.to_string());
        if let RegistryError::NotLeader(leader) = self {
            response.extensions_mut().insert(ToLeader(leader));
        }
        response
    }
}

pub(super) fn error_body(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"error_code": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::BadRequest(e.to_string()))
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.to_owned()))
}

/// A version as Confluent shows it: subject, version, id, type unless Avro, references when
/// there are some, and the schema.
fn version_json(subject: &str, number: i32, v: &Version) -> Value {
    let mut out = json!({"subject": subject, "version": number, "id": v.id});
    schema_fields(&mut out, v);
    out
}

fn schema_fields(out: &mut Value, v: &Version) {
    if !v.schema_type.is_avro() {
        out["schemaType"] = json!(v.schema_type.name());
    }
    if !v.references.is_empty() {
        out["references"] = json!(v.references);
    }
    out["schema"] = json!(v.schema);
}

async fn metadata_id(State(service): Shared) -> Response {
    ok(json!({"scope": {"path": [], "clusters": {
        "kafka-cluster": service.kafka_cluster_id,
        "schema-registry-cluster": "schema-registry"
    }}}))
}

async fn schemas(State(service): Shared, Query(params): Params) -> Response {
    let state = service.registry.state();
    let prefix = params.get("subjectPrefix").map_or("", String::as_str);
    let all = state.all(prefix, flag(&params, "deleted"));
    let latest_only = flag(&params, "latestOnly");
    let listed: Vec<Value> = all
        .iter()
        .enumerate()
        .filter(|(i, (s, _, _))| !latest_only || all.get(i + 1).is_none_or(|next| next.0 != *s))
        .map(|(_, (s, n, v))| version_json(s, *n, v))
        .collect();
    ok(json!(listed))
}

async fn schema_by_id(
    State(service): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = service.registry.state();
    let v = state
        .by_id(parse_id(&id)?)
        .ok_or(RegistryError::SchemaNotFound(id))?;
    let mut out = json!({});
    schema_fields(&mut out, v);
    serialized_if_asked(&service, &state, v, &params, &mut out)?;
    Ok(ok(out))
}

/// `?format=serialized`: the schema as its format's serialized form where it has one.
fn serialized_if_asked(
    service: &Service,
    state: &super::state::State,
    v: &Version,
    params: &HashMap<String, String>,
    out: &mut Value,
) -> Result<(), RegistryError> {
    if params.get("format").map(String::as_str) == Some("serialized") {
        if let Some(serialized) = service.registry.serialized(state, v)? {
            out["schema"] = json!(serialized);
        }
    }
    Ok(())
}

async fn raw_schema_by_id(State(service): Shared, Path(id): Path<String>) -> Answer {
    let state = service.registry.state();
    let v = state
        .by_id(parse_id(&id)?)
        .ok_or(RegistryError::SchemaNotFound(id))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.schema.clone(),
    )
        .into_response())
}

async fn subjects_of_id(
    State(service): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = service.registry.state();
    let deleted = flag(&params, "deleted");
    let uses = state.uses_of(parse_id(&id)?);
    let mut subjects: Vec<&str> = uses
        .iter()
        .filter(|u| deleted || !u.2)
        .map(|u| u.0)
        .collect();
    subjects.dedup();
    if subjects.is_empty() {
        return Err(RegistryError::SchemaNotFound(id));
    }
    Ok(ok(json!(subjects)))
}

async fn versions_of_id(
    State(service): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = service.registry.state();
    let deleted = flag(&params, "deleted");
    let uses: Vec<Value> = state
        .uses_of(parse_id(&id)?)
        .into_iter()
        .filter(|u| deleted || !u.2)
        .map(|(subject, version, _)| json!({"subject": subject, "version": version}))
        .collect();
    if uses.is_empty() {
        return Err(RegistryError::SchemaNotFound(id));
    }
    Ok(ok(json!(uses)))
}

async fn subjects(State(service): Shared, Query(params): Params) -> Response {
    let state = service.registry.state();
    let prefix = params.get("subjectPrefix").map_or("", String::as_str);
    let subjects: Vec<String> = state
        .subjects(flag(&params, "deleted"))
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    ok(json!(subjects))
}

async fn versions(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let state = service.registry.state();
    let versions = state
        .versions(&subject, flag(&params, "deleted"))
        .ok_or(RegistryError::SubjectNotFound(subject))?;
    Ok(ok(json!(versions
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>())))
}

async fn version(
    State(service): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let state = service.registry.state();
    let (number, v) = state.version(&subject, spec.number(), flag(&params, "deleted"))?;
    let mut out = version_json(&subject, number, v);
    serialized_if_asked(&service, &state, v, &params, &mut out)?;
    Ok(ok(out))
}

async fn raw_version(
    State(service): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let state = service.registry.state();
    let (_, v) = state.version(&subject, spec.number(), flag(&params, "deleted"))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.schema.clone(),
    )
        .into_response())
}

async fn referenced_by(
    State(service): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let state = service.registry.state();
    let (number, _) = state.version(&subject, spec.number(), false)?;
    Ok(ok(json!(state.referenced_by(&subject, number))))
}

/// The body of a register, look-up or compatibility request.
#[derive(Deserialize)]
struct SchemaRequest {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
    id: Option<i32>,
    version: Option<i32>,
}

impl SchemaRequest {
    fn into_new(self) -> Result<NewSchema, RegistryError> {
        let schema_type = match &self.schema_type {
            Some(name) => SchemaType::parse(name)?,
            None => SchemaType::Avro,
        };
        Ok(NewSchema {
            schema: self.schema,
            schema_type,
            references: self.references,
            id: self.id.filter(|id| *id > 0),
            version: self.version,
        })
    }
}

async fn register(State(service): Shared, Path(subject): Path<String>, bytes: Bytes) -> Answer {
    let new = body::<SchemaRequest>(&bytes)?.into_new()?;
    let id = service.registry.register(&subject, new).await?;
    Ok(ok(json!({"id": id})))
}

async fn lookup(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> Answer {
    let new = body::<SchemaRequest>(&bytes)?.into_new()?;
    let state = service.registry.state();
    let deleted = flag(&params, "deleted");
    if state.versions(&subject, deleted).is_none() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    let (_, stored) = service.registry.parse(&state, &new)?;
    let (number, v) = state
        .find_in_subject(&subject, new.schema_type, &stored, &new.references, deleted)
        .ok_or_else(|| RegistryError::SchemaNotFound(String::new()))?;
    Ok(ok(version_json(&subject, number, v)))
}

async fn delete_subject(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let versions = service
        .registry
        .delete_subject(&subject, flag(&params, "permanent"))
        .await?;
    Ok(ok(json!(versions)))
}

async fn delete_version(
    State(service): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let number = service
        .registry
        .delete_version(&subject, spec, flag(&params, "permanent"))
        .await?;
    Ok(ok(json!(number)))
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn level_of(bytes: &[u8]) -> Result<Compatibility, RegistryError> {
    let request: ConfigRequest = body(bytes)?;
    let name = request
        .compatibility
        .or(request.compatibility_level)
        .ok_or(RegistryError::InvalidCompatibilityLevel)?;
    Compatibility::parse(&name)
}

/// `GET /config` and `/config/{subject}`: a subject without its own level answers 40408
/// unless `defaultToGlobal`.
fn get_config(
    service: &Service,
    subject: Option<&str>,
    params: &HashMap<String, String>,
) -> Answer {
    let state = service.registry.state();
    let global = || state.config(None).unwrap_or(Compatibility::DEFAULT);
    let level = match subject {
        None => global(),
        Some(s) => match state.config(Some(s)) {
            Some(level) => level,
            None if flag(params, "defaultToGlobal") => global(),
            None => return Err(RegistryError::SubjectConfigNotFound(s.to_owned())),
        },
    };
    Ok(ok(json!({"compatibilityLevel": level.name()})))
}

async fn put_config(service: &Service, subject: Option<&str>, bytes: &[u8]) -> Answer {
    let level = level_of(bytes)?;
    service.registry.set_config(subject, Some(level)).await?;
    Ok(ok(json!({"compatibility": level.name()})))
}

/// `DELETE /config[/{subject}]`: back to the default, answering the level it had.
async fn delete_config(service: &Service, subject: Option<&str>) -> Answer {
    let previous = {
        let state = service.registry.state();
        match subject {
            None => state.config(None).unwrap_or(Compatibility::DEFAULT),
            Some(s) => {
                if state.all_versions(s).is_none() {
                    return Err(RegistryError::SubjectNotFound(s.to_owned()));
                }
                state
                    .config(Some(s))
                    .ok_or_else(|| RegistryError::SubjectConfigNotFound(s.to_owned()))?
            }
        }
    };
    service.registry.set_config(subject, None).await?;
    Ok(ok(json!({"compatibilityLevel": previous.name()})))
}

async fn global_config(State(service): Shared, Query(params): Params) -> Answer {
    get_config(&service, None, &params)
}

async fn put_global_config(State(service): Shared, bytes: Bytes) -> Answer {
    put_config(&service, None, &bytes).await
}

async fn delete_global_config(State(service): Shared) -> Answer {
    delete_config(&service, None).await
}

async fn subject_config(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    get_config(&service, Some(&subject), &params)
}

async fn put_subject_config(
    State(service): Shared,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Answer {
    put_config(&service, Some(&subject), &bytes).await
}

async fn delete_subject_config(State(service): Shared, Path(subject): Path<String>) -> Answer {
    delete_config(&service, Some(&subject)).await
}

#[derive(Deserialize)]
struct ModeRequest {
    mode: String,
}

/// `GET /mode` and `/mode/{subject}`: a subject without its own mode answers 40409 unless
/// `defaultToGlobal`.
fn get_mode(service: &Service, subject: Option<&str>, params: &HashMap<String, String>) -> Answer {
    let state = service.registry.state();
    let mode = match subject {
        None => state.mode(None),
        Some(s) => match state.mode_set(Some(s)) {
            Some(mode) => mode,
            None if flag(params, "defaultToGlobal") => state.mode(None),
            None => return Err(RegistryError::SubjectModeNotFound(s.to_owned())),
        },
    };
    Ok(ok(json!({"mode": mode.name()})))
}

async fn put_mode(
    service: &Service,
    subject: Option<&str>,
    params: &HashMap<String, String>,
    bytes: &[u8],
) -> Answer {
    let mode = Mode::parse(&body::<ModeRequest>(bytes)?.mode)?;
    service
        .registry
        .set_mode(subject, Some(mode), flag(params, "force"))
        .await?;
    Ok(ok(json!({"mode": mode.name()})))
}

async fn global_mode(State(service): Shared, Query(params): Params) -> Answer {
    get_mode(&service, None, &params)
}

async fn put_global_mode(State(service): Shared, Query(params): Params, bytes: Bytes) -> Answer {
    put_mode(&service, None, &params, &bytes).await
}

async fn subject_mode(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    get_mode(&service, Some(&subject), &params)
}

async fn put_subject_mode(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> Answer {
    put_mode(&service, Some(&subject), &params, &bytes).await
}

async fn delete_subject_mode(State(service): Shared, Path(subject): Path<String>) -> Answer {
    let previous = service
        .registry
        .state()
        .mode_set(Some(&subject))
        .ok_or_else(|| RegistryError::SubjectModeNotFound(subject.clone()))?;
    service
        .registry
        .set_mode(Some(&subject), None, false)
        .await?;
    Ok(ok(json!({"mode": previous.name()})))
}

async fn check_all(
    State(service): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> Answer {
    check(&service, &subject, None, &params, &bytes)
}

async fn check_version(
    State(service): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    bytes: Bytes,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    check(&service, &subject, Some(spec), &params, &bytes)
}

/// `POST /compatibility/...`: whether the schema could be registered, with the reasons when
/// `verbose`. A subject without versions accepts anything, as a first registration would.
fn check(
    service: &Service,
    subject: &str,
    spec: Option<VersionSpec>,
    params: &HashMap<String, String>,
    bytes: &[u8],
) -> Answer {
    let new = body::<SchemaRequest>(bytes)?.into_new()?;
    let state = service.registry.state();
    let (parsed, _) = service.registry.parse(&state, &new)?;
    let found = match (spec, state.versions(subject, false)) {
        (Some(VersionSpec::Latest) | None, None) => Vec::new(),
        _ => service
            .registry
            .incompatibilities(&state, subject, &parsed, new.schema_type, spec)?,
    };
    let mut out = json!({"is_compatible": found.is_empty()});
    if flag(params, "verbose") {
        out["messages"] = json!(found);
    }
    Ok(ok(out))
}
