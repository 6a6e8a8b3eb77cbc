//! The file engine's entry in the registry: `file:PATH[?links=inside]` and
//! `{"config_path": PATH, "links": "inside"}`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{FileBackend, FileLinks, FileOptions};
use crate::backend::registry::{Engine, EngineSpec, Registry};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::options::Credentials;
use crate::spec::{BackendKind, BackendSpec};

impl BackendKind {
    /// JSON files in folders.
    pub const FILE: BackendKind = BackendKind::new("file");
}

impl BackendSpec {
    /// A file backend's spec: the folder holding one sub-folder per namespace.
    pub fn file(config_path: impl Into<PathBuf>) -> Self {
        BackendSpec::new(FileSpec { config_path: config_path.into(), links: FileLinks::default() })
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
}

impl fmt::Display for FileSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file:{}", self.config_path.display())?;
        match self.links {
            FileLinks::Follow => Ok(()),
            other => write!(f, "?links={other}"),
        }
    }
}

#[async_trait]
impl EngineSpec for FileSpec {
    fn kind(&self) -> BackendKind {
        BackendKind::FILE
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        let options = FileOptions { links: self.links, ..Default::default() };
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
        // `?links=…` is the only option; any other `?` belongs to the path.
        let (path, links) = match path.rsplit_once("?links=") {
            Some((path, links)) => (path, links.parse()?),
            None => (path, FileLinks::default()),
        };
        if path.is_empty() {
            return Err(Error::spec(Some("path"), "file: needs a folder, for example file:./Configurations"));
        }
        Ok(BackendSpec::new(FileSpec { config_path: PathBuf::from(path), links }))
    }

    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        let mut creds = Credentials::new(BackendKind::FILE, credentials)?;
        let config_path = PathBuf::from(creds.required_str("config_path")?);
        let links = creds.optional_str("links")?.map(str::parse).transpose()?.unwrap_or_default();
        creds.finish()?;
        Ok(BackendSpec::new(FileSpec { config_path, links }))
    }
}
