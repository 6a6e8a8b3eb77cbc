//! The web console, `/console`: server-rendered HTML (maud) with one vendored copy of htmx
//! and a small script of its own (`assets/console.js`: the filter, the editor's dirty flag,
//! live updates). Every page works with the keyboard and without colour: differences are
//! marked with `−` and `+`, not only tinted.
//!
//! Sign-in takes an API token and keeps a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie; every change the console makes is a request whose `Origin` the
//! server checks ([`crate::request::caller`]).

use std::collections::BTreeMap;

use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use confo::model::change::Precondition;
use confo::secrets::{mask, MASK};
use confo::store::Page;
use confo::{Configuration, Removal};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{allowed, keep_secrets};
use crate::auth::Role;
use crate::diff::{self, Row};
use crate::problem::Problem;
use crate::request::{caller, peer_ip, too_many, Caller, Place, SESSION_COOKIE};
use crate::App;

const HTMX: &[u8] = include_bytes!("../assets/htmx-2.0.11.min.js");
const SCRIPT: &str = include_str!("../assets/console.js");
const STYLE: &str = include_str!("../assets/console.css");

/// The console's routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(index))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/assets/htmx.min.js", get(|| async { asset("text/javascript", HTMX) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript", SCRIPT.as_bytes()) }))
        .route("/console/assets/console.css", get(|| async { asset("text/css", STYLE.as_bytes()) }))
        .route("/console/compare", get(compare))
        .route("/console/b/{backend}/namespaces", post(create_namespace))
        .route("/console/b/{backend}/ns/{ns}", get(namespace))
        .route("/console/b/{backend}/ns/{ns}/delete", post(delete_namespace))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}", get(configuration))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}/check", post(check))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}/text", get(text))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}/save", post(save))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}/history", get(history))
        .route("/console/b/{backend}/ns/{ns}/c/{cfg}/rollback", post(rollback))
}

fn asset(kind: &'static str, bytes: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=3600")], bytes).into_response()
}

/// A console page's caller: the session's grant; without one, the sign-in page.
#[derive(Debug)]
struct Viewer(Caller);

impl FromRequestParts<App> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        match caller(parts, app) {
            Ok(caller) => Ok(Viewer(caller)),
            Err(problem) if problem.status == StatusCode::UNAUTHORIZED => {
                Err(Redirect::to("/console/login").into_response())
            }
            Err(problem) => Err(error_page(problem)),
        }
    }
}

fn layout(title: &str, viewer: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · confo" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx.min.js" {}
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="main" {
                        a.brand href="/console" { "confo" }
                        a href="/console" { "Namespaces" }
                        a href="/console/compare" { "Compare" }
                        @if let Some(viewer) = viewer {
                            span.who { "Signed in as " strong { (viewer.grant.name) } }
                            @if viewer.by_cookie {
                                form.inline method="post" action="/console/logout" {
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

fn error_page(problem: Problem) -> Response {
    let status = problem.status;
    let page = layout(
        "Error",
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
            p.error role="alert" { (problem.detail) }
            p { a href="/console" { "Back to the namespaces" } }
        },
    );
    (status, page).into_response()
}

fn fragment_error(problem: Problem) -> Markup {
    html! { p.error role="alert" { strong { "Error: " } (problem.detail) } }
}

fn url_of(backend: &str, ns: &str) -> String {
    format!("/console/b/{}/ns/{}", encode(backend), encode(ns))
}

fn url_of_config(backend: &str, ns: &str, cfg: &str) -> String {
    format!("{}/c/{}", url_of(backend, ns), encode(cfg))
}

/// Percent-encodes a path segment.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn pretty(value: &Configuration) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

// ----- sign-in -----

async fn login_page() -> Markup {
    login_form(None)
}

fn login_form(message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(message) = message { p.error role="alert" { (message) } }
            form method="post" action="/console/login" {
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required autofocus;
                p.hint { "Make one with " code { "confo token add NAME --role read,write" } "." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<App>, parts: Parts, Form(form): Form<LoginForm>) -> Response {
    // A sign-in posted by another site's page would sign the operator's browser in as the
    // attacker's token (login CSRF): what the operator then enters goes to the attacker.
    if !crate::request::same_origin(&parts, &app) {
        let message = "Sign in from this server's own page (the request's Origin is another site's).";
        return (StatusCode::FORBIDDEN, login_form(Some(message))).into_response();
    }
    let ip = peer_ip(&parts);
    if let Some(wait) = app.limiter.blocked(ip) {
        let problem = too_many(wait);
        return (problem.status, login_form(Some(&problem.detail))).into_response();
    }
    let token = form.token.trim();
    let Some(grant) = app.tokens.as_ref().and_then(|t| t.check(token)) else {
        app.limiter.fail(ip);
        return (StatusCode::UNAUTHORIZED, login_form(Some("That token is not known here."))).into_response();
    };
    let id = match app.sessions.start(grant, token) {
        Ok(id) => id,
        Err(e) => return error_page(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e)),
    };
    let secure = if app.settings.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{secure}");
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(app): State<App>, parts: Parts) -> Response {
    if let Some(id) = crate::request::cookie(&parts, SESSION_COOKIE) {
        app.sessions.end(id);
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("confo_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

// ----- namespaces -----

async fn index(State(app): State<App>, Viewer(viewer): Viewer) -> Response {
    let mut sections = Vec::new();
    for served in app.backends.iter().filter(|b| viewer.grant.sees_backend(&b.name)) {
        let namespaces = match served.store.namespaces().await {
            Ok(names) => names,
            Err(e) => {
                sections.push(html! {
                    section { h2 { (served.name) } p.error role="alert" { (e.to_string()) } }
                });
                continue;
            }
        };
        let mut rows = Vec::new();
        for ns in namespaces.into_iter().filter(|ns| viewer.grant.sees(&served.name, ns)) {
            let count = served.store.load_compact(&ns).await.map(|d| d.entries.len());
            rows.push((ns, count));
        }
        let may_write = viewer.grant.has(Role::Write) && !viewer.anonymous;
        sections.push(html! {
            section {
                h2 { "Backend " (served.name) }
                p.hint { (served.describe) }
                table.listing data-filtered="" {
                    caption.visually-hidden { "Namespaces of " (served.name) }
                    thead { tr { th scope="col" { "Namespace" } th scope="col" { "Configurations" } } }
                    tbody {
                        @for (ns, count) in &rows {
                            tr data-name=(ns) {
                                td { a href=(url_of(&served.name, ns)) { (ns) } }
                                td.number { @match count { Ok(n) => (n), Err(e) => span.error { (e.kind().as_str()) } } }
                            }
                        }
                    }
                }
                @if rows.is_empty() { p { "No namespaces yet." } }
                @if may_write {
                    form.inline method="post" action=(format!("/console/b/{}/namespaces", encode(&served.name))) {
                        label for=(format!("new-ns-{}", served.name)) { "New namespace" }
                        input id=(format!("new-ns-{}", served.name)) name="name" required pattern="[^/]+";
                        button type="submit" { "Create" }
                    }
                }
            }
        });
    }
    let body = html! {
        h1 { "Namespaces" }
        (filter_box("namespaces"))
        @for section in sections { (section) }
    };
    layout("Namespaces", Some(&viewer), body).into_response()
}

fn filter_box(what: &str) -> Markup {
    html! {
        p.filter {
            label for="filter" { "Filter " (what) }
            input id="filter" type="search" data-filter="" placeholder="part of a name" autocomplete="off";
        }
    }
}

#[derive(Debug, Deserialize)]
struct NameForm {
    name: String,
}

async fn create_namespace(
    State(app): State<App>,
    Viewer(viewer): Viewer,
    place: Place,
    Form(form): Form<NameForm>,
) -> Response {
    let run = async {
        let served = app.backend(place.backend.as_deref())?;
        // The token's namespace pattern is checked against the name that is created (the
        // form's, trimmed), never the one typed: `x ` must not pass `x?` and create `x`.
        let name = form.name.trim();
        viewer.require(Role::Write, &served.name, Some(name))?;
        served.store.create_namespace(name).await?;
        served.cache.written(name, None);
        Ok::<_, Problem>(Redirect::to(&url_of(&served.name, name)).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

async fn delete_namespace(State(app): State<App>, Viewer(viewer): Viewer, place: Place) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Admin)?;
        app.store_as(served, &viewer.grant.name).remove_namespace(&place.namespace, Removal::Recursive).await?;
        served.cache.written(&place.namespace, None);
        Ok::<_, Problem>(Redirect::to("/console").into_response())
    };
    run.await.unwrap_or_else(error_page)
}

async fn namespace(State(app): State<App>, Viewer(viewer): Viewer, place: Place) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Read)?;
        let data = served.store.load(&place.namespace).await?;
        let schemas = served.store.schemas(&place.namespace).await?;
        let compiled = match &schemas {
            Some(s) => Some(s.compile(&place.namespace)?),
            None => None,
        };
        let may_write = viewer.grant.has(Role::Write) && !viewer.anonymous;
        let body = html! {
            p.crumbs { a href="/console" { "Namespaces" } " / " (served.name) " / " strong { (place.namespace) } }
            h1 { "Namespace " (place.namespace) }
            (filter_box("configurations"))
            table.listing data-filtered="" {
                caption.visually-hidden { "Configurations of " (place.namespace) }
                thead { tr {
                    th scope="col" { "Configuration" } th scope="col" { "Fields" }
                    th scope="col" { "Version" } th scope="col" { "Schema" }
                } }
                tbody {
                    @for (name, stored) in data.iter() {
                        @let violations = compiled.as_ref().map(|c| c.check(name, &stored.value).len());
                        tr data-name=(name) {
                            td { a href=(url_of_config(&served.name, &place.namespace, name)) { (name) } }
                            td.number { (stored.value.len()) }
                            td { code { (stored.version.to_string()) } }
                            td { @match violations {
                                None => "—",
                                Some(0) => "✓ valid",
                                Some(n) => strong.error { "✗ " (n) " violation" @if n != 1 { "s" } },
                            } }
                        }
                    }
                    @for (name, entry) in &data.corrupt {
                        tr data-name=(name) {
                            td { (name) } td colspan="3" { strong.error { "unreadable: " } (entry.corruption.to_string()) }
                        }
                    }
                }
            }
            @if data.is_empty() && data.corrupt.is_empty() { p { "No configurations yet." } }
            @if may_write {
                form.inline method="get" action=(format!("{}/c/new", url_of(&served.name, &place.namespace))) data-new-config="" {
                    label for="new-config" { "New configuration" }
                    input id="new-config" name="name" required pattern="[^/]+";
                    button type="submit" { "Create" }
                }
            }
            @if let Some(schemas) = &schemas {
                details {
                    summary { "Schema (mode " (schemas.mode.as_str()) ")" }
                    pre { (serde_json::to_string_pretty(&Value::Object(schemas.to_json())).unwrap_or_default()) }
                }
            }
            @if viewer.grant.has(Role::Admin) && !viewer.anonymous {
                form.inline method="post" action=(format!("{}/delete", url_of(&served.name, &place.namespace)))
                    data-confirm=(format!("Delete namespace {} and every configuration in it?", place.namespace)) {
                    button.danger type="submit" { "Delete namespace" }
                }
            }
        };
        Ok::<_, Problem>(layout(&place.namespace, Some(&viewer), body).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

// ----- a configuration -----

#[derive(Debug, Deserialize, Default)]
struct ConfigQuery {
    #[serde(default)]
    reveal: bool,
    name: Option<String>,
}

async fn configuration(
    State(app): State<App>,
    Viewer(viewer): Viewer,
    mut place: Place,
    Query(query): Query<ConfigQuery>,
) -> Response {
    // `…/c/new?name=X` (the namespace page's form) is the page of X, new or not.
    if place.configuration == "new" {
        if let Some(name) = query.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            let backend = place.backend.clone().unwrap_or_default();
            return Redirect::to(&url_of_config(&backend, &place.namespace, name)).into_response();
        }
    }
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Read)?;
        confo::BackendExt::namespace(&**served.store.backend(), &place.namespace)?;
        confo::BackendExt::config_name(&**served.store.backend(), &place.configuration)?;
        let stored = served.store.get(&place.namespace, &place.configuration).await?;
        let may_reveal = viewer.grant.has(Role::Reveal) && app.keyring.is_some() && !viewer.anonymous;
        let secrets = stored.as_ref().is_some_and(|s| confo::model::sealed::has_sealed(&s.value));
        let text = match &stored {
            Some(s) if query.reveal && secrets => {
                let shown = crate::api::shown(&app, &viewer, served, &place, &s.value, true)?;
                pretty(&shown)
            }
            Some(s) => pretty(&mask(&s.value)),
            None => "{\n}".to_owned(),
        };
        let version = stored.as_ref().map(|s| s.version.to_string()).unwrap_or_default();
        let may_write = viewer.grant.has(Role::Write) && !viewer.anonymous;
        let base = url_of_config(&served.name, &place.namespace, &place.configuration);
        place.backend = Some(served.name.clone());
        let events =
            format!("/api/v1/backends/{}/namespaces/{}/events", encode(&served.name), encode(&place.namespace));
        let body = html! {
            p.crumbs {
                a href="/console" { "Namespaces" } " / " (served.name) " / "
                a href=(url_of(&served.name, &place.namespace)) { (place.namespace) } " / " strong { (place.configuration) }
            }
            h1 { "Configuration " (place.configuration) }
            p #status-line {
                @if stored.is_some() {
                    "Version " code #version-shown { (version) } " · "
                    a href=(format!("{base}/history")) { "History" }
                } @else {
                    strong { "New configuration" } ": it is created when you save."
                }
                @if secrets {
                    " · "
                    @if query.reveal { a href=(base) { "Mask secrets" } }
                    @else if may_reveal { a href=(format!("{base}?reveal=true")) { "Reveal secrets" } }
                    @else { "Secrets are shown as " code { (MASK) } "." }
                }
            }
            div #live role="status" aria-live="polite" {}
            form #editor-form
                data-events=(events) data-text=(format!("{base}/text")) data-config=(place.configuration)
                hx-post=(format!("{base}/save")) hx-target="#result" {
                input #version type="hidden" name="version" value=(version);
                input #existed type="hidden" name="existed" value=(if stored.is_some() { "1" } else { "0" });
                label for="editor" { "JSON (" (place.configuration) ")" }
                textarea #editor name="value" rows="14" spellcheck="false" autocomplete="off"
                    readonly[!may_write]
                    hx-post=(format!("{base}/check")) hx-trigger="input changed delay:250ms, load, refresh"
                    hx-target="#check" hx-include="#editor-form" { (text) }
                div #check aria-live="polite" {}
                @if may_write {
                    p.actions {
                        button #save type="submit" { "Save" }
                    }
                }
                div #result role="status" aria-live="polite" {}
            }
        };
        Ok::<_, Problem>(layout(&place.configuration, Some(&viewer), body).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

/// The stored value as the editor shows it (masked, exact numbers) and its version in the
/// `ETag`: what a live update puts in the editor.
async fn text(State(app): State<App>, Viewer(viewer): Viewer, place: Place) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Read)?;
        let stored = served.cache.get(&place.namespace, &place.configuration).await?;
        let stored = stored.ok_or_else(|| crate::api::not_found(&place))?;
        let mut response =
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], pretty(&mask(&stored.value))).into_response();
        if let Some(tag) = crate::api::etag(&stored.version) {
            response.headers_mut().insert(header::ETAG, tag);
        }
        Ok::<_, Problem>(response)
    };
    run.await.unwrap_or_else(|p| p.into_response())
}

#[derive(Debug, Deserialize)]
struct EditForm {
    value: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    existed: String,
    #[serde(default)]
    overwrite: Option<String>,
}

/// The edit parsed as a configuration, or why not (with line and column).
fn parse_edit(text: &str) -> Result<Configuration, String> {
    match confo::model::json::parse(text, "the edit") {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("a configuration is a JSON object, not {}", confo::model::json::kind(&other))),
        Err(confo::Error::InvalidValue { message, .. }) => Err(format!("not valid JSON: {message}")),
        Err(e) => Err(e.to_string()),
    }
}

fn diff_table(old: &str, new: &str, caption: &str, labels: (&str, &str)) -> Markup {
    let rows = diff::lines(old, new);
    html! {
        table.diff {
            caption { (caption) }
            thead { tr { th scope="col" { (labels.0) } th scope="col" { (labels.1) } } }
            tbody {
                @for row in &rows {
                    @match row {
                        Row::Same(line) => tr { td { code { "  " (line) } } td { code { "  " (line) } } },
                        Row::Old(line) => tr { td.removed { code { "− " (line) } } td {} },
                        Row::New(line) => tr { td {} td.added { code { "+ " (line) } } },
                        Row::Changed(a, b) => tr { td.removed { code { "− " (a) } } td.added { code { "+ " (b) } } },
                    }
                }
            }
        }
    }
}

async fn check(State(app): State<App>, Viewer(viewer): Viewer, place: Place, Form(form): Form<EditForm>) -> Markup {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Read)?;
        let value = match parse_edit(&form.value) {
            Ok(value) => value,
            Err(message) => return Ok(html! { p.error #syntax role="alert" { strong { "✗ " } (message) } }),
        };
        let violations = crate::api::check(served, &place, &value).await?;
        let stored = served.store.get(&place.namespace, &place.configuration).await?;
        let old = stored.as_ref().map(|s| pretty(&mask(&s.value))).unwrap_or_default();
        let changed = stored.as_ref().map(|s| mask(&s.value)) != Some(mask(&value));
        Ok::<_, Problem>(html! {
            @if violations.is_empty() {
                p.ok #valid { "✓ Valid JSON" @if served.store.schemas(&place.namespace).await.ok().flatten().is_some() { ", and it follows the schema" } "." }
            } @else {
                div.error #violations role="alert" {
                    strong { "✗ Breaks the namespace's schema:" }
                    ul { @for v in &violations {
                        li { code { (v["pointer"].as_str().unwrap_or("")) } " " (v["message"].as_str().unwrap_or("")) }
                    } }
                }
            }
            @if changed { (diff_table(&old, &pretty(&mask(&value)), "Your edit against the stored value", ("Stored", "Your edit"))) }
            @else { p.hint { "No changes against the stored value." } }
        })
    };
    run.await.unwrap_or_else(fragment_error)
}

async fn save(State(app): State<App>, Viewer(viewer): Viewer, place: Place, Form(form): Form<EditForm>) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Write)?;
        let value = parse_edit(&form.value).map_err(Problem::bad_request)?;
        let store = app.store_as(served, &viewer.grant.name);
        let current = store.get(&place.namespace, &place.configuration).await?;
        let overwrite = form.overwrite.is_some();
        // The version the page was showing; "overwrite" takes what is stored now instead.
        let condition = match (&current, overwrite) {
            (Some(c), true) => Precondition::Version(c.version.clone()),
            (None, true) => Precondition::Absent,
            (_, false) if form.existed != "1" => Precondition::Absent,
            (_, false) => Precondition::Version(confo::model::version::Version::text(form.version.clone())),
        };
        let conflict = match (&condition, &current) {
            (Precondition::Absent, Some(_)) => true,
            (Precondition::Version(v), Some(c)) => v.to_string() != c.version.to_string(),
            (Precondition::Version(_), None) => true,
            _ => false,
        };
        if conflict {
            return Ok(conflict_message(&place, &form, current.as_ref().map(|c| c.version.to_string())));
        }
        // The store's own version type (a number or a token), from what was just read.
        let condition = match (condition, &current) {
            (Precondition::Version(_), Some(c)) => Precondition::Version(c.version.clone()),
            (other, _) => other,
        };
        let value = keep_secrets(&app, &place, current.as_ref().map(|c| &*c.value), value)?;
        let result = store.put(&place.namespace, &place.configuration, value, condition).await;
        served.cache.written(&place.namespace, Some(&place.configuration));
        match result {
            Ok(version) => {
                let version = version.to_string();
                Ok(html! {
                    p.ok #saved { "✓ Saved: version " code { (version) } "." }
                    input #version type="hidden" name="version" value=(version) hx-swap-oob="true";
                    input #existed type="hidden" name="existed" value="1" hx-swap-oob="true";
                    p #status-line hx-swap-oob="true" {
                        "Version " code #version-shown { (version) } " · "
                        a href=(format!("{}/history", url_of_config(&served.name, &place.namespace, &place.configuration))) { "History" }
                    }
                }
                .into_response())
            }
            Err(e) if e.is_conflict() => Ok(conflict_message(&place, &form, None)),
            Err(e) => {
                let problem = Problem::from(e);
                Ok(html! {
                    div.error #save-error role="alert" {
                        strong { "Not saved. " } (problem.detail)
                        @if let Some(Value::Array(list)) = problem.violations.as_deref() {
                            ul { @for v in list { li { code { (v["pointer"].as_str().unwrap_or("")) } " " (v["message"].as_str().unwrap_or("")) } } }
                        }
                    }
                }
                .into_response())
            }
        }
    };
    run.await.unwrap_or_else(|problem| fragment_error(problem).into_response())
}

fn conflict_message(place: &Place, form: &EditForm, now: Option<String>) -> Response {
    let base = url_of_config(place.backend.as_deref().unwrap_or_default(), &place.namespace, &place.configuration);
    html! {
        div.conflict #conflict role="alert" {
            strong { "Someone else saved this configuration first" }
            @match &now {
                Some(v) => { " (it is at version " code { (v) } " now; you were editing " code { (if form.version.is_empty() { "none" } else { &form.version }) } ")." }
                None => { "." }
            }
            " Your edit is not saved. "
            a href=(base) { "Reload" } " to see theirs and start again, or "
            button type="button" hx-post=(format!("{base}/save")) hx-include="#editor-form"
                hx-vals=r#"{"overwrite": "1"}"# hx-target="#result" { "Overwrite with my edit" }
            "."
        }
    }
    .into_response()
}

// ----- history -----

async fn history(State(app): State<App>, Viewer(viewer): Viewer, place: Place) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Read)?;
        let history = served.store.history(&place.namespace, &place.configuration, Page::newest(100)).await?;
        let may_write = viewer.grant.has(Role::Write) && !viewer.anonymous;
        let base = url_of_config(&served.name, &place.namespace, &place.configuration);
        let text = |r: Option<&confo::model::history::Revision>| {
            r.and_then(|r| r.value.as_ref()).map(|v| pretty(&mask(v))).unwrap_or_default()
        };
        let body = html! {
            p.crumbs {
                a href="/console" { "Namespaces" } " / " (served.name) " / "
                a href=(url_of(&served.name, &place.namespace)) { (place.namespace) } " / "
                a href=(base) { (place.configuration) } " / " strong { "history" }
            }
            h1 { "History of " (place.configuration) }
            @for c in &history.corrupt { p.error { "Unreadable record: " (c.to_string()) } }
            @if history.revisions.is_empty() { p { "No revision is recorded." } }
            ol.revisions reversed {
                @for (i, r) in history.revisions.iter().enumerate() {
                    li id=(format!("rev-{}", r.number)) {
                        h2 {
                            "Revision " (r.number) " · " (r.operation.as_str())
                            @if let Some(n) = r.restores { " of revision " (n) }
                        }
                        p.meta {
                            (confo::model::history::format_time(r.time)) " by " strong { (r.actor) }
                            " on " (r.host) " with " (r.tool)
                            @if let Some(m) = &r.message { " — “" (m) "”" }
                        }
                        (diff_table(&text(history.revisions.get(i + 1)), &text(Some(r)),
                            &format!("Revision {} against the one before", r.number), ("Before", "After")))
                        @if may_write && r.value.is_some() && i > 0 {
                            form.inline method="post" action=(format!("{base}/rollback"))
                                data-confirm=(format!("Roll {} back to revision {}?", place.configuration, r.number)) {
                                input type="hidden" name="number" value=(r.number);
                                button type="submit" { "Roll back to revision " (r.number) }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Problem>(layout("History", Some(&viewer), body).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

#[derive(Debug, Deserialize)]
struct RollbackForm {
    number: u64,
}

async fn rollback(
    State(app): State<App>,
    Viewer(viewer): Viewer,
    place: Place,
    Form(form): Form<RollbackForm>,
) -> Response {
    let run = async {
        let served = allowed(&app, &viewer, &place, Role::Write)?;
        let store = app.store_as(served, &viewer.grant.name);
        let result = store.rollback(&place.namespace, &place.configuration, form.number, None).await;
        served.cache.written(&place.namespace, Some(&place.configuration));
        result?;
        let base = url_of_config(&served.name, &place.namespace, &place.configuration);
        Ok::<_, Problem>(Redirect::to(&format!("{base}/history")).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

// ----- compare -----

#[derive(Debug, Deserialize, Default)]
struct CompareQuery {
    left: Option<String>,
    right: Option<String>,
}

/// One side of a comparison: `BACKEND/NAMESPACE` (its configurations by name) or `BACKEND`
/// (every namespace it may read, as `NAMESPACE/CONFIGURATION`), secrets masked.
async fn side(app: &App, viewer: &Caller, text: &str) -> Result<BTreeMap<String, Value>, Problem> {
    let (backend, ns) = match text.split_once('/') {
        Some((backend, ns)) => (backend, Some(ns)),
        None => (text, None),
    };
    let served = app.backend(Some(backend))?;
    viewer.require(Role::Read, &served.name, ns)?;
    let namespaces = match ns {
        Some(ns) => vec![ns.to_owned()],
        None => served.store.namespaces().await?.into_iter().filter(|n| viewer.grant.sees(&served.name, n)).collect(),
    };
    let mut out = BTreeMap::new();
    for namespace in &namespaces {
        for (name, stored) in served.store.load(namespace).await?.iter() {
            let key = if ns.is_some() { name.clone() } else { format!("{namespace}/{name}") };
            out.insert(key, Value::Object(mask(&stored.value)));
        }
    }
    Ok(out)
}

async fn compare(State(app): State<App>, Viewer(viewer): Viewer, Query(query): Query<CompareQuery>) -> Response {
    let run = async {
        let mut options = Vec::new();
        for served in app.backends.iter().filter(|b| viewer.grant.sees_backend(&b.name)) {
            // A whole backend, then each of its namespaces.
            options.push(served.name.clone());
            for ns in served.store.namespaces().await.unwrap_or_default() {
                if viewer.grant.sees(&served.name, &ns) {
                    options.push(format!("{}/{ns}", served.name));
                }
            }
        }
        // By default, the first two namespaces.
        let namespaces: Vec<&String> = options.iter().filter(|o| o.contains('/')).collect();
        let picked =
            |chosen: &Option<String>, i: usize| chosen.clone().or_else(|| namespaces.get(i).map(|s| (*s).clone()));
        let (left, right) = (picked(&query.left, 0), picked(&query.right, 1));
        let mut result = None;
        if let (Some(l), Some(r), true) = (&left, &right, query.left.is_some() && query.right.is_some()) {
            if l.contains('/') != r.contains('/') {
                return Err(Problem::bad_request("compare two namespaces, or two whole backends"));
            }
            let (a, b) = (side(&app, &viewer, l).await?, side(&app, &viewer, r).await?);
            let mut rows: BTreeMap<String, (Option<Value>, Option<Value>)> = BTreeMap::new();
            for (name, value) in a {
                rows.entry(name).or_default().0 = Some(value);
            }
            for (name, value) in b {
                rows.entry(name).or_default().1 = Some(value);
            }
            rows.retain(|_, (x, y)| x != y);
            result = Some(rows);
        }
        let body = html! {
            h1 { "Compare" }
            form.inline method="get" action="/console/compare" {
                label for="left" { "Left" }
                select #left name="left" { @for o in &options { option value=(o) selected[left.as_deref() == Some(o.as_str())] { (o) } } }
                label for="right" { "Right" }
                select #right name="right" { @for o in &options { option value=(o) selected[right.as_deref() == Some(o.as_str())] { (o) } } }
                button type="submit" { "Compare" }
            }
            @if let Some(rows) = &result {
                @if rows.is_empty() { p.ok #same { "✓ No differences." } }
                @else {
                    p { (rows.len()) " configuration" @if rows.len() != 1 { "s" } " differ; identical ones are not shown." }
                    table.diff #differences {
                        thead { tr { th scope="col" { "Configuration" } th scope="col" { "Field" } th scope="col" { (left.as_deref().unwrap_or("")) } th scope="col" { (right.as_deref().unwrap_or("")) } } }
                        tbody {
                            @for (name, (a, b)) in rows {
                                @if a.is_none() || b.is_none() {
                                    tr { th scope="row" { (name) } td { "—" }
                                        td { @if a.is_some() { "present" } @else { em { "missing" } } }
                                        td { @if b.is_some() { "present" } @else { em { "missing" } } } }
                                } @else {
                                    @for (pointer, x, y) in diff::fields(a.as_ref(), b.as_ref()) {
                                        tr { th scope="row" { (name) } td { code { (pointer) } }
                                            td.removed { code { "− " (x.map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into())) } }
                                            td.added { code { "+ " (y.map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into())) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Problem>(layout("Compare", Some(&viewer), body).into_response())
    };
    run.await.unwrap_or_else(error_page)
}
