//! The etcd engine's schema documents: one key per namespace, `/confo-schemas/<ns>`, outside
//! the `/confo/` prefix old readers list. Versions are the key's mod revision; a write is one
//! transaction comparing the namespace's marker (a put needs the namespace) and the
//! precondition.

use etcd_client as etcd;

use super::{compare, marker, EtcdBackend};
use crate::model::change::Precondition;
use crate::model::error::{Error, Result};
use crate::model::version::Version;

/// Where schema documents are kept.
const SCHEMAS_PREFIX: &str = "/confo-schemas/";

fn schema_key(namespace: &str) -> String {
    format!("{SCHEMAS_PREFIX}{namespace}")
}

impl EtcdBackend {
    pub(super) async fn read_schema(&self, namespace: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let resp = self.get(schema_key(namespace), None).await?;
        Ok(resp.kvs().first().map(|kv| (kv.value().to_vec(), Version::number(kv.mod_revision()))))
    }

    pub(super) async fn write_schema(
        &self,
        namespace: &str,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        let key = schema_key(namespace);
        let putting = document.is_some();
        let mut compares = Vec::new();
        if putting {
            compares.push(etcd::Compare::create_revision(marker(namespace), etcd::CompareOp::Greater, 0));
        }
        compares.extend(compare(&key, precondition));
        let op = match document {
            Some(bytes) => etcd::TxnOp::put(key.clone(), bytes, None),
            None => etcd::TxnOp::delete(key.clone(), None),
        };
        let resp = self.txn(etcd::Txn::new().when(compares).and_then([op])).await?;
        if resp.succeeded() {
            return Ok(putting.then(|| Version::number(resp.header().map_or(0, |h| h.revision()))));
        }
        if putting && self.get(marker(namespace), None).await?.kvs().is_empty() {
            return Err(self.missing_namespace(namespace));
        }
        Err(Error::conflict(self.location(&key), None))
    }
}
