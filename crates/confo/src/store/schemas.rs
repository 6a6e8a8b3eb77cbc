//! The schema documents a [`Store`](super::Store) has read, by namespace, with their versions:
//! a read-modify-write names the version it holds and the engine sends the document again only
//! if it changed ([`Backend::read_one_with_schema`]), so a point write checks its value without
//! fetching the schemas each time. Never trusted on its own: every use is a version the engine
//! confirmed in the same request.

use std::collections::HashMap;

use crate::backend::{Backend, SchemaRead};
use crate::model::error::Result;
use crate::model::name::NamespaceName;
use crate::schema::SchemasAsRead;

/// At most this many namespaces' documents are kept (cleared when full).
const KEPT: usize = 1024;

/// A store's schema documents, by namespace (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct HeldSchemas {
    /// Namespaces whose document was present when last read. (A lock a `fork()` waits for:
    /// see `crate::fork`.)
    entries: crate::fork::Mutex<HashMap<String, SchemasAsRead>>,
}

impl HeldSchemas {
    /// The schemas held for a namespace, if its document was present when last read.
    pub(crate) fn held(&self, namespace: &str) -> Option<SchemasAsRead> {
        self.entries.lock().get(namespace).cloned()
    }

    /// What an engine's answer next to [`HeldSchemas::held`] means: the schemas held, or the
    /// document it sent (decoded and kept).
    pub(crate) fn answer(
        &self,
        namespace: &NamespaceName,
        backend: &dyn Backend,
        held: Option<&SchemasAsRead>,
        read: SchemaRead,
    ) -> Result<SchemasAsRead> {
        match (read, held) {
            (SchemaRead::Same, Some(held)) => Ok(held.clone()),
            (SchemaRead::Same, None) => Err(crate::model::error::Error::unavailable(
                backend.describe(),
                format!("said the schema document of {namespace} was unchanged, though none was named"),
            )),
            (SchemaRead::Now(document), _) => self.keep(namespace, backend, document),
        }
    }

    /// Decodes a document as read, and keeps it (or forgets the namespace's, when it has none
    /// or it cannot be read: the error refuses the write).
    fn keep(
        &self,
        namespace: &NamespaceName,
        backend: &dyn Backend,
        document: Result<Option<(Vec<u8>, crate::model::version::Version)>>,
    ) -> Result<SchemasAsRead> {
        let location = crate::schema::location_of(backend, namespace);
        let decoded = SchemasAsRead::decode(document, &location, namespace.as_str());
        let mut entries = self.entries.lock();
        match &decoded {
            Ok(read) if read.version.is_some() => {
                if entries.len() >= KEPT {
                    entries.clear();
                }
                entries.insert(namespace.as_str().to_owned(), read.clone());
            }
            _ => {
                entries.remove(namespace.as_str());
            }
        }
        decoded
    }
}
