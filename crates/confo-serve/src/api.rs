//! The HTTP API, `/api/v1` (see `docs/API.md`; OpenAPI at `/api/v1/openapi.json`).
//!
//! Every route exists twice: `/api/v1/namespaces/…` serves the first backend given to `confo
//! serve`, `/api/v1/backends/{backend}/namespaces/…` any of them. A configuration's `ETag` is
//! its version in the store; `If-Match` makes a write conditional (412 when someone else wrote
//! first), `If-None-Match: *` makes it create-only. Secrets are shown as `"<secret>"` unless
//! the token has the `reveal` role and asks (`?reveal=true`); writing `"<secret>"` back keeps
//! the stored secret.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use confo::model::change::Precondition;
use confo::model::version::{Stored, Version};
use confo::secrets::{mask, MASK};
use confo::store::Page;
use confo::{Configuration, Error, Removal};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{Role, StreamOwner};
use crate::cache::{EventIds, Replay, Sent};
use crate::problem::Problem;
use crate::request::{Caller, JsonBody, Place};
use crate::{App, Served};

/// The API's routes.
pub fn routes() -> Router<App> {
    let namespaces = Router::new()
        .route("/namespaces", get(list_namespaces))
        .route("/namespaces/{ns}", get(namespace_info).put(create_namespace).delete(delete_namespace))
        .route("/namespaces/{ns}/configurations", get(list_configurations))
        .route(
            "/namespaces/{ns}/configurations/{cfg}",
            get(get_configuration).put(put_configuration).patch(patch_configuration).delete(delete_configuration),
        )
        .route("/namespaces/{ns}/configurations/{cfg}/history", get(history))
        .route("/namespaces/{ns}/configurations/{cfg}/history/{number}", get(revision))
        .route("/namespaces/{ns}/configurations/{cfg}/diff", get(diff))
        .route("/namespaces/{ns}/configurations/{cfg}/rollback", post(rollback))
        .route("/namespaces/{ns}/configurations/{cfg}/validate", post(validate_candidate))
        .route("/namespaces/{ns}/configurations/{cfg}/secrets/{field}", put(set_secret))
        .route("/namespaces/{ns}/schema", get(get_schema).put(set_schema).delete(delete_schema))
        .route("/namespaces/{ns}/validate", post(validate_stored).get(validate_stored))
        .route("/namespaces/{ns}/events", get(events));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/backends", get(list_backends))
        .nest("/api/v1", namespaces.clone())
        .nest("/api/v1/backends/{backend}", namespaces)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

/// The backend a request names, once the caller has `role` on its namespace.
pub(crate) fn allowed<'a>(app: &'a App, caller: &Caller, place: &Place, role: Role) -> Result<&'a Served, Problem> {
    let served = app.backend(place.backend.as_deref())?;
    caller.require(role, &served.name, Some(&place.namespace))?;
    Ok(served)
}

/// `"<version>"`, the ETag of a version.
pub fn etag(version: &Version) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// The versions an `If-Match` / `If-None-Match` header lists (`*` as `"*"`).
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/").trim_matches('"').to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
    )
}

/// The write precondition the headers ask for, if any, checked against `current` where it
/// cannot be said to the store (`If-Match: *`, several versions).
fn precondition(headers: &HeaderMap, current: Option<&Version>) -> Result<Option<Precondition>, Problem> {
    if let Some(tags) = tags(headers, header::IF_NONE_MATCH) {
        if tags.iter().any(|t| t == "*") {
            return Ok(Some(Precondition::Absent));
        }
        return Err(Problem::bad_request("a write takes If-None-Match: * (create only) and nothing else"));
    }
    let Some(tags) = tags(headers, header::IF_MATCH) else { return Ok(None) };
    let failed = || {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "conflict",
            "the configuration is not at the version If-Match names: someone else changed it; read it again",
        )
    };
    match current {
        Some(version) if tags.iter().any(|t| t == "*" || *t == version.to_string()) => {
            Ok(Some(Precondition::Version(version.clone())))
        }
        _ => Err(failed()),
    }
}

#[derive(Debug, Deserialize, Default)]
struct RevealQuery {
    #[serde(default)]
    reveal: bool,
}

/// A stored value as the caller may see it: masked, or opened for `reveal`.
pub fn shown(
    app: &App,
    caller: &Caller,
    served: &Served,
    place: &Place,
    value: &Configuration,
    reveal: bool,
) -> Result<Configuration, Problem> {
    if !confo::model::sealed::has_sealed(value) {
        return Ok(value.clone());
    }
    if !reveal {
        return Ok(mask(value));
    }
    caller.require(Role::Reveal, &served.name, Some(&place.namespace))?;
    let keyring = app.keyring.as_ref().ok_or_else(|| {
        Problem::new(StatusCode::CONFLICT, "secret", "this server has no keyring to open secrets (CONFO_KEYS)")
    })?;
    Ok(confo::secrets::reveal(value, &place.namespace, &place.configuration, keyring)?)
}

/// Keeps the stored secrets a client wrote back as [`MASK`], and seals (with the server's
/// keyring) a new value written where a secret was. A new value for a secret without a
/// keyring is refused: it would be stored in the clear.
pub fn keep_secrets(
    app: &App,
    place: &Place,
    stored: Option<&Configuration>,
    new: Configuration,
) -> Result<Configuration, Problem> {
    let Some(stored) = stored.filter(|s| confo::model::sealed::has_sealed(s)) else { return Ok(new) };
    let mut new = Value::Object(new);
    let old = Value::Object(stored.clone());
    for pointer in confo::secrets::sealed_fields(stored) {
        let Some(sealed) = old.pointer(&pointer) else { continue };
        let Some(slot) = new.pointer_mut(&pointer) else { continue };
        if *slot == Value::String(MASK.into()) || slot == sealed {
            *slot = sealed.clone();
            continue;
        }
        let keyring = app.keyring.as_ref().ok_or_else(|| {
            Problem::bad_request(format!(
                "{pointer} is a secret and this server has no keyring to seal a new value; \
                 send \"{MASK}\" to keep it, or set it with confo secret set"
            ))
        })?;
        let place = confo::secrets::Place {
            namespace: &place.namespace,
            configuration: &place.configuration,
            pointer: &pointer,
        };
        *slot = keyring.seal(&place, slot)?;
    }
    match new {
        Value::Object(map) => Ok(map),
        _ => Ok(Configuration::new()),
    }
}

// ----- backends and namespaces -----

async fn list_backends(State(app): State<App>, caller: Caller) -> Json<Value> {
    let backends: Vec<Value> = app
        .backends
        .iter()
        .filter(|b| caller.grant.sees_backend(&b.name))
        .map(|b| json!({"name": b.name, "describe": b.describe}))
        .collect();
    Json(json!({ "backends": backends }))
}

async fn list_namespaces(State(app): State<App>, caller: Caller, place: Place) -> Result<Json<Value>, Problem> {
    let served = app.backend(place.backend.as_deref())?;
    caller.require(Role::Read, &served.name, None)?;
    let names: Vec<String> =
        served.store.namespaces().await?.into_iter().filter(|ns| caller.grant.sees(&served.name, ns)).collect();
    Ok(Json(json!({ "namespaces": names })))
}

/// `Confo-Snapshot: time=2026-12-07T04:00:00.000Z, age=93s`: the answer came from the
/// backend's last-known-good snapshot (its store was unavailable).
pub const SNAPSHOT_HEADER: &str = "confo-snapshot";

/// The JSON field and the header that say an answer came from a snapshot (none: it did not).
fn snapshot(info: Option<&confo::model::version::SnapshotInfo>) -> (Value, Option<HeaderValue>) {
    let Some(info) = info else { return (Value::Null, None) };
    let time = confo::model::history::format_time(info.taken);
    let age = info.age().as_secs();
    let field = json!({"time": time, "age_seconds": age, "reason": info.reason, "partial": info.partial});
    (field, HeaderValue::from_str(&format!("time={time}, age={age}s")).ok())
}

/// `value` as JSON, with its `from_snapshot` field and header when it came from a snapshot.
fn with_snapshot(mut value: Value, info: Option<&confo::model::version::SnapshotInfo>) -> Response {
    let (field, header) = snapshot(info);
    if header.is_some() {
        value["from_snapshot"] = field;
    }
    let mut response = Json(value).into_response();
    if let Some(header) = header {
        response.headers_mut().insert(SNAPSHOT_HEADER, header);
    }
    response
}

async fn namespace_info(State(app): State<App>, caller: Caller, place: Place) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let data = served.store.load_compact(&place.namespace).await?;
    let info = json!({
        "name": place.namespace,
        "configurations": data.entries.len(),
        "corrupt": data.corrupt.len(),
    });
    Ok(with_snapshot(info, data.from_snapshot.as_ref()))
}

async fn create_namespace(State(app): State<App>, caller: Caller, place: Place) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    let created = served.store.create_namespace(&place.namespace).await?;
    served.cache.written(&place.namespace, None);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"name": place.namespace, "created": created}))).into_response())
}

#[derive(Debug, Deserialize, Default)]
struct DeleteNamespaceQuery {
    #[serde(default)]
    recursive: bool,
}

async fn delete_namespace(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<DeleteNamespaceQuery>,
) -> Result<StatusCode, Problem> {
    let served = allowed(&app, &caller, &place, Role::Admin)?;
    let removal = if query.recursive { Removal::Recursive } else { Removal::IfEmpty };
    app.store_as(served, &caller.grant.name).remove_namespace(&place.namespace, removal).await?;
    served.cache.written(&place.namespace, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    values: bool,
}

async fn list_configurations(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let data = served.store.load(&place.namespace).await?;
    let configurations: Vec<Value> = data
        .iter()
        .map(|(name, stored)| {
            let mut entry = json!({"name": name, "version": stored.version.to_string()});
            if query.values {
                entry["value"] = Value::Object(mask(&stored.value));
            }
            entry
        })
        .collect();
    let corrupt: Vec<Value> = data
        .corrupt
        .iter()
        .map(|(name, entry)| json!({"name": name, "problem": entry.corruption.to_string()}))
        .collect();
    Ok(with_snapshot(json!({"configurations": configurations, "corrupt": corrupt}), data.from_snapshot.as_ref()))
}

// ----- configurations -----

pub(crate) fn not_found(place: &Place) -> Problem {
    Problem::not_found(format!("no configuration {:?} in namespace {:?}", place.configuration, place.namespace))
}

fn with_etag(mut response: Response, version: &Version) -> Response {
    if let Some(tag) = etag(version) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

async fn get_configuration(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    headers: HeaderMap,
    Query(query): Query<RevealQuery>,
) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let stored = served.cache.get(&place.namespace, &place.configuration).await?.ok_or_else(|| not_found(&place))?;
    if !query.reveal {
        if let Some(tags) = tags(&headers, header::IF_NONE_MATCH) {
            if tags.iter().any(|t| t == "*" || *t == stored.version.to_string()) {
                return Ok(with_etag(StatusCode::NOT_MODIFIED.into_response(), &stored.version));
            }
        }
    }
    let value = shown(&app, &caller, served, &place, &stored.value, query.reveal)?;
    let mut response = Json(Value::Object(value)).into_response();
    if query.reveal {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // The body is the configuration itself: only the header says it came from a snapshot.
    if let (_, Some(header)) = snapshot(stored.from_snapshot.as_deref()) {
        response.headers_mut().insert(SNAPSHOT_HEADER, header);
    }
    Ok(with_etag(response, &stored.version))
}

async fn put_configuration(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    let value = body.object()?;
    let store = app.store_as(served, &caller.grant.name);
    // One step on what is stored: the file engine reads the file once, under its lock, for
    // the If-Match check, the secrets kept and the write (issue 34). Without a precondition
    // the write applies to what was read (the secrets kept are that version's).
    let edit = {
        let (app, place) = (app.clone(), place.clone());
        move |current: Option<&Stored>| -> Result<Option<Configuration>, Problem> {
            match precondition(&headers, current.map(|c| &c.version))? {
                Some(Precondition::Absent) if current.is_some() => Err(Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "conflict",
                    "the configuration exists, and If-None-Match: * asks to create it only",
                )),
                _ => keep_secrets(&app, &place, current.map(|c| &*c.value), value.clone()).map(Some),
            }
        }
    };
    let result = store.modify(&place.namespace, &place.configuration, edit).await;
    served.cache.written(&place.namespace, Some(&place.configuration));
    let modified = result?;
    let version = modified.version.ok_or_else(no_version)?;
    let status = if modified.before.is_none() { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_etag((status, Json(json!({"version": version.to_string()}))).into_response(), &version))
}

/// A write that landed without a version (an engine's fault): said, never a panic.
fn no_version() -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store reported no version for the write")
}

/// RFC 7396: `patch` applied to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.shift_remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

async fn patch_configuration(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    if !body.0.is_object() {
        return Err(Problem::bad_request("a merge patch of a configuration must be a JSON object"));
    }
    let store = app.store_as(served, &caller.grant.name);
    // One read per attempt; a writer in between makes the store read and patch again.
    let edit = {
        let (app, place, patch) = (app.clone(), place.clone(), body.0);
        move |current: Option<&Stored>| -> Result<Option<Configuration>, Problem> {
            precondition(&headers, current.map(|c| &c.version))?;
            let Some(current) = current else { return Err(not_found(&place)) };
            let mut value = Value::Object((*current.value).clone());
            merge_patch(&mut value, &patch);
            let Value::Object(value) = value else { return Err(Problem::bad_request("the patch left no object")) };
            keep_secrets(&app, &place, Some(&current.value), value).map(Some)
        }
    };
    let result = store.modify(&place.namespace, &place.configuration, edit).await;
    served.cache.written(&place.namespace, Some(&place.configuration));
    let version = result?.version.ok_or_else(no_version)?;
    Ok(with_etag(Json(json!({"version": version.to_string()})).into_response(), &version))
}

async fn delete_configuration(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    let store = app.store_as(served, &caller.grant.name);
    let result = if headers.contains_key(header::IF_MATCH) {
        let current = store.get(&place.namespace, &place.configuration).await?;
        let given = precondition(&headers, current.as_ref().map(|c| &c.version))?.unwrap_or_default();
        store.delete(&place.namespace, &place.configuration, given).await.map_err(|e| Problem::precondition(e, true))
    } else {
        store.remove(&place.namespace, &place.configuration).await.map_err(Problem::from)
    };
    served.cache.written(&place.namespace, Some(&place.configuration));
    result.map(|()| StatusCode::NO_CONTENT)
}

async fn set_secret(State(app): State<App>, caller: Caller, place: Place, body: JsonBody) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    let keyring = app.keyring.as_ref().ok_or_else(|| {
        Problem::new(StatusCode::CONFLICT, "secret", "this server has no keyring to seal secrets (CONFO_KEYS)")
    })?;
    let store = app.store_as(served, &caller.grant.name);
    let result = store.set_secret(&place.namespace, &place.configuration, &place.field, body.0, keyring).await;
    served.cache.written(&place.namespace, Some(&place.configuration));
    let version = result?;
    Ok(with_etag(Json(json!({"version": version.to_string()})).into_response(), &version))
}

// ----- history -----

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    before: Option<u64>,
}

/// A revision as JSON (its value only when `value` is given).
pub fn revision_json(revision: &confo::model::history::Revision, value: Option<Configuration>) -> Value {
    let mut out = json!({
        "number": revision.number,
        "operation": revision.operation.as_str(),
        "time": confo::model::history::format_time(revision.time),
        "actor": revision.actor,
        "host": revision.host,
        "tool": revision.tool,
        "message": revision.message,
        "version_before": revision.version_before,
        "version_after": revision.version_after,
        "restores": revision.restores,
        "deletion": revision.value.is_none(),
    });
    if let Some(value) = value {
        out["value"] = Value::Object(value);
    }
    out
}

async fn history(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let page = Page { before: query.before, limit: query.limit.unwrap_or(50).min(1000) };
    let history = served.store.history(&place.namespace, &place.configuration, page).await?;
    let revisions: Vec<Value> = history.revisions.iter().map(|r| revision_json(r, None)).collect();
    let corrupt: Vec<String> = history.corrupt.iter().map(ToString::to_string).collect();
    Ok(Json(json!({"revisions": revisions, "corrupt": corrupt})))
}

async fn revision(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<RevealQuery>,
) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let number = place.number.unwrap_or_default();
    let revision = served.store.revision(&place.namespace, &place.configuration, number).await?;
    let value = match &revision.value {
        Some(v) => Some(shown(&app, &caller, served, &place, v, query.reveal)?),
        None => None,
    };
    Ok(Json(revision_json(&revision, value)))
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: u64,
    to: Option<u64>,
}

async fn diff(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<DiffQuery>,
) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let store = &served.store;
    let old = store.revision(&place.namespace, &place.configuration, query.from).await?.value;
    let new = match query.to {
        Some(n) => store.revision(&place.namespace, &place.configuration, n).await?.value,
        None => store.get(&place.namespace, &place.configuration).await?.map(|s| s.value),
    };
    let (old, new) = (old.map(|v| Value::Object(mask(&v))), new.map(|v| Value::Object(mask(&v))));
    let changes: Vec<Value> = crate::diff::fields(old.as_ref(), new.as_ref())
        .into_iter()
        .map(|(pointer, old, new)| json!({"pointer": pointer, "old": old, "new": new}))
        .collect();
    Ok(Json(json!({
        "from": query.from,
        "to": query.to.map_or(json!("current"), Value::from),
        "changes": changes,
    })))
}

#[derive(Debug, Deserialize)]
struct RollbackBody {
    to: u64,
}

async fn rollback(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, Problem> {
    let served = allowed(&app, &caller, &place, Role::Write)?;
    let RollbackBody { to } = serde_json::from_value(body.0)
        .map_err(|e| Problem::bad_request(format!("a rollback body is {{\"to\": N}}: {e}")))?;
    let store = app.store_as(served, &caller.grant.name);
    let given = if headers.contains_key(header::IF_MATCH) {
        let current = store.get(&place.namespace, &place.configuration).await?;
        precondition(&headers, current.as_ref().map(|c| &c.version))?
    } else {
        None
    };
    let result = store.rollback(&place.namespace, &place.configuration, to, given.clone()).await;
    served.cache.written(&place.namespace, Some(&place.configuration));
    let version = result.map_err(|e| Problem::precondition(e, given.is_some()))?;
    Ok(with_etag(Json(json!({"version": version.to_string(), "restored": to})).into_response(), &version))
}

// ----- schemas -----

async fn get_schema(State(app): State<App>, caller: Caller, place: Place) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    match served.store.schemas(&place.namespace).await? {
        Some(schemas) => Ok(Json(Value::Object(schemas.to_json()))),
        None => Err(Problem::not_found(format!("namespace {:?} has no schema", place.namespace))),
    }
}

#[derive(Debug, Deserialize)]
struct SchemaBody {
    schema: Option<Value>,
    configuration: Option<String>,
    mode: Option<String>,
}

async fn set_schema(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    body: JsonBody,
) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Admin)?;
    let body: SchemaBody = serde_json::from_value(body.0).map_err(|e| {
        Problem::bad_request(format!(
            "a schema body is {{\"schema\": {{…}}, \"configuration\"?: …, \"mode\"?: …}}: {e}"
        ))
    })?;
    let mode = match body.mode.as_deref() {
        Some(text) => Some(text.parse::<confo::schema::Mode>()?),
        None => None,
    };
    if body.schema.is_none() && mode.is_none() {
        return Err(Problem::bad_request("give \"schema\", \"mode\" or both"));
    }
    let store = app.store_as(served, &caller.grant.name);
    let schemas = store.set_schema(&place.namespace, body.configuration.as_deref(), body.schema, mode).await?;
    Ok(Json(Value::Object(schemas.to_json())))
}

#[derive(Debug, Deserialize)]
struct DeleteSchemaQuery {
    configuration: Option<String>,
}

async fn delete_schema(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    Query(query): Query<DeleteSchemaQuery>,
) -> Result<StatusCode, Problem> {
    let served = allowed(&app, &caller, &place, Role::Admin)?;
    let store = app.store_as(served, &caller.grant.name);
    store.remove_schema(&place.namespace, query.configuration.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The violations of `value` as configuration `place.configuration` would have them.
pub async fn check(served: &Served, place: &Place, value: &Configuration) -> Result<Vec<Value>, Error> {
    let Some(schemas) = served.store.schemas(&place.namespace).await? else { return Ok(Vec::new()) };
    let compiled = schemas.compile(&place.namespace)?;
    Ok(compiled
        .check(&place.configuration, value)
        .into_iter()
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .collect())
}

async fn validate_candidate(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    body: JsonBody,
) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let value = body.object()?;
    let violations = check(served, &place, &value).await?;
    Ok(Json(json!({"valid": violations.is_empty(), "violations": violations})))
}

async fn validate_stored(State(app): State<App>, caller: Caller, place: Place) -> Result<Json<Value>, Problem> {
    let served = allowed(&app, &caller, &place, Role::Read)?;
    let violations = served.store.validate(std::slice::from_ref(&place.namespace)).await?;
    Ok(Json(json!({"valid": violations.is_empty(), "violations": violations})))
}

// ----- events -----

fn sse_event(ids: &EventIds, sent: &Sent) -> SseEvent {
    SseEvent::default().id(ids.format(sent.id)).event(sent.kind).data(&sent.json)
}

/// How long an event stream waits for its namespace's watcher to start (a burst of subscribers
/// to a namespace not watched yet all wait for the first one's), before a 503.
const WATCH_START_WAIT: Duration = Duration::from_secs(3);

fn resync() -> SseEvent {
    SseEvent::default()
        .event("resync")
        .data(r#"{"event":"resync","reason":"events were missed; read the namespace again"}"#)
}

/// How often an open event stream looks whether its token still exists.
const STREAM_TOKEN_CHECK: Duration = Duration::from_secs(15);

/// One open event stream, counted (see [`crate::auth::Streams`]) until it is dropped: when the
/// stream ends or its client goes away.
struct StreamSlot {
    app: App,
    owner: StreamOwner,
}

impl StreamSlot {
    /// Counts a stream of `caller`, or 429 with `Retry-After` beyond a limit.
    fn open(app: &App, caller: &Caller, ip: std::net::IpAddr) -> Result<StreamSlot, Problem> {
        let owner =
            if caller.anonymous { StreamOwner::Address(ip) } else { StreamOwner::Token(caller.grant.name.clone()) };
        app.streams.open(&owner, app.settings.streams).map_err(|why| {
            let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", why);
            problem.retry_after = Some(5);
            problem
        })?;
        Ok(StreamSlot { app: app.clone(), owner })
    }

    /// Whether the token the stream was opened with is still accepted.
    fn token_live(&self) -> bool {
        match &self.owner {
            StreamOwner::Token(name) => self.app.tokens.as_ref().is_some_and(|t| t.has_name(name)),
            StreamOwner::Address(_) => true,
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.app.streams.close(&self.owner);
    }
}

async fn events(
    State(app): State<App>,
    caller: Caller,
    place: Place,
    parts: axum::http::request::Parts,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let headers = &parts.headers;
    let served = allowed(&app, &caller, &place, Role::Read)?;
    // Only an existing namespace can be watched (404 otherwise).
    confo::BackendExt::namespace(&**served.store.backend(), &place.namespace)?;
    if !served.store.namespaces().await?.contains(&place.namespace) {
        return Err(Problem::not_found(format!("no namespace {:?}", place.namespace)));
    }
    // An id this process did not give (another process's, a number from before event ids had
    // an epoch, anything else) cannot be vouched for: a resync.
    let last = headers.get("last-event-id").map(|v| v.to_str().ok().and_then(|id| served.cache.ids().parse(id)));
    let space = tokio::time::timeout(WATCH_START_WAIT, served.cache.space(&place.namespace)).await.ok();
    let Some(space) = space.filter(|space| space.is_live()) else {
        // Never a stream that stays silent: say that changes cannot be followed now.
        let mut problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("changes of namespace {:?} cannot be followed now; try again", place.namespace),
        );
        problem.retry_after = Some(1);
        return Err(problem);
    };
    let slot = StreamSlot::open(&app, &caller, crate::request::peer_ip(&parts))?;
    let (receiver, replay) = space.subscribe(last);
    let ids = served.cache.ids_handle();
    let first: Vec<SseEvent> = match replay {
        Replay::Events(kept) => kept.iter().map(|s| sse_event(&ids, s)).collect(),
        Replay::Resync => vec![resync()],
    };
    let shutdown = app.shutdown.clone();
    let live = stream::unfold((receiver, space, slot), move |(mut receiver, space, slot)| {
        let mut shutdown = shutdown.clone();
        let ids = ids.clone();
        async move {
            loop {
                tokio::select! {
                    received = receiver.recv() => return match received {
                        Ok(sent) => Some((sse_event(&ids, &sent), (receiver, space, slot))),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((resync(), (receiver, space, slot))),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                    },
                    _ = shutdown.wait_for(|down| *down) => return None,
                    // A stream lasts while its token does: looked at as often as the
                    // keep-alive is sent, so an idle stream wakes no more than it did.
                    _ = tokio::time::sleep(STREAM_TOKEN_CHECK) => {
                        if !slot.token_live() {
                            return None;
                        }
                    }
                }
            }
        }
    });
    let stream = stream::iter(first).chain(live).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
