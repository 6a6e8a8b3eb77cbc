//! The file engine's entry in the registry: `file:PATH[?links=inside&meta_path=DIR]` and
//! `{"config_path": PATH, "links": "inside", "meta_path": DIR}`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{FileBackend, FileLinks, FileOptions};
use crate::backend::Backend;
use crate::model::error::{Error, Result};
use crate::model::history::HistoryOptions;
use crate::options::Credentials;
use crate::spec::{BackendKind, BackendSpec};
use crate::spec::{Engine, EngineSpec, Registry};

impl BackendKind {
    /// JSON files in folders.
    pub const FILE: BackendKind = BackendKind::new("file");
}

impl BackendSpec {
    /// A file backend's spec: the folder holding one sub-folder per namespace.
    pub fn file(config_path: impl Into<PathBuf>) -> Self {
        BackendSpec::new(FileSpec {
            config_path: config_path.into(),
            links: FileLinks::default(),
            history: HistoryOptions::default(),
            history_path: None,
            meta_path: None,
        })
    }
}

/// Where a file backend stores, as a spec holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileSpec {
    /// The folder holding one sub-folder per namespace.
    pub config_path: PathBuf,
    /// Which symbolic links are followed (`?links=inside` in a spec, `"links": "inside"` in
    /// credentials).
    pub links: FileLinks,
    /// History (`?history=off`, `history_keep=N`, `history_max_age=30d`).
    pub history: HistoryOptions,
    /// Where history is kept (`?history_path=DIR`); default `history` in the metadata folder.
    pub history_path: Option<PathBuf>,
    /// confo's metadata folder (`?meta_path=DIR`: history, schemas); default `.<root>.confo`
    /// beside the root.
    pub meta_path: Option<PathBuf>,
}

impl fmt::Display for FileSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file:{}", self.config_path.display())?;
        let mut query = Vec::new();
        if self.links != FileLinks::Follow {
            query.push(format!("links={}", self.links));
        }
        query.extend(self.history.query());
        if let Some(path) = &self.history_path {
            query.push(format!("history_path={}", path.display()));
        }
        if let Some(path) = &self.meta_path {
            query.push(format!("meta_path={}", path.display()));
        }
        if query.is_empty() {
            Ok(())
        } else {
            write!(f, "?{}", query.join("&"))
        }
    }
}

#[async_trait]
impl EngineSpec for FileSpec {
    fn kind(&self) -> BackendKind {
        BackendKind::FILE
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        let options = FileOptions {
            links: self.links,
            history: self.history,
            history_path: self.history_path.clone(),
            meta_path: self.meta_path.clone(),
            ..Default::default()
        };
        Ok(Arc::new(FileBackend::with_options(self.config_path.clone(), options)?))
    }
}

/// The file engine.
pub(crate) struct FileEngine;

impl Engine for FileEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::FILE
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["files"]
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["file"]
    }

    fn example(&self) -> &'static str {
        "file:PATH"
    }

    fn parse_url(&self, _: &Registry, spec: &str) -> Result<BackendSpec> {
        let rest = spec.split_once(':').map_or("", |(_, rest)| rest);
        let path = rest.strip_prefix("//").unwrap_or(rest);
        // Options after the last `?` when every one is known; otherwise the `?` belongs to the path.
        const KNOWN: [&str; 6] = ["links", "history", "history_keep", "history_max_age", "history_path", "meta_path"];
        let (path, query) = match path.rsplit_once('?') {
            Some((path, query))
                if query.split('&').all(|p| p.split_once('=').is_some_and(|(k, _)| KNOWN.contains(&k))) =>
            {
                (path, query)
            }
            _ => (path, ""),
        };
        if path.is_empty() {
            return Err(Error::spec(Some("path"), "file: needs a folder, for example file:./Configurations"));
        }
        let mut spec = FileSpec {
            config_path: PathBuf::from(path),
            links: FileLinks::default(),
            history: HistoryOptions::default(),
            history_path: None,
            meta_path: None,
        };
        for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
            match key {
                "links" => spec.links = value.parse()?,
                "history_path" => spec.history_path = Some(PathBuf::from(value)),
                "meta_path" => spec.meta_path = Some(PathBuf::from(value)),
                _ => {
                    crate::options::set_history_option(&mut spec.history, key, value)?;
                }
            }
        }
        Ok(BackendSpec::new(spec))
    }

    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        let mut creds = Credentials::new(BackendKind::FILE, credentials)?;
        let config_path = PathBuf::from(creds.required_str("config_path")?);
        let links = creds.optional_str("links")?.map(str::parse).transpose()?.unwrap_or_default();
        let history = crate::options::history_from_credentials(&mut creds)?;
        let history_path = creds.optional_str("history_path")?.map(PathBuf::from);
        let meta_path = creds.optional_str("meta_path")?.map(PathBuf::from);
        creds.finish()?;
        Ok(BackendSpec::new(FileSpec { config_path, links, history, history_path, meta_path }))
    }
}
