//! Which znodes a ZooKeeper backend with credentials trusts.
//!
//! With `user:password`, confo creates its znodes for that identity alone (creator ACLs). A node
//! that someone else created, or whose ACL lets others change it, could hold or receive data an
//! attacker controls: an unauthenticated client can pre-create `/confo/payments` world-open, and
//! then replace any configuration below it. So confo reads the ACL of the nodes it uses and
//! refuses one that grants anything beyond reading to an identity other than its own
//! ([`Error::Insecure`]), unless the spec says `foreign_acls=trust`.
//!
//! Which nodes are checked, and why that is enough:
//!
//! - `[chroot]/confo` when connecting, and the namespace's node on every read and write, with one
//!   `getACL` sent together with the read's first request.
//! - The configurations below a namespace node only when their own ACL or the namespace node's
//!   has ever been changed (`aversion` ≠ 0, in the stat every read returns): a child can only be
//!   created by an identity allowed to create children of the namespace node, and a namespace
//!   node that only we may change, and whose ACL never changed since it was created, has only
//!   ever had children created by us, with the ACL we chose.

use zookeeper_client as zk;

use crate::error::Error;

/// Our identity as ZooKeeper stores it in digest ACLs, to tell our entries from others'.
#[derive(Debug, Clone)]
pub(super) struct Trust {
    /// `user:base64(sha1(user:password))`, as ZooKeeper's `DigestAuthenticationProvider` makes it.
    digest_id: String,
}

impl Trust {
    pub(super) fn new(user: &str, password: &str) -> Self {
        let hash = sha1_smol::Sha1::from(format!("{user}:{password}")).digest().bytes();
        Trust { digest_id: format!("{user}:{}", base64(&hash)) }
    }

    fn is_ours(&self, id: &zk::AuthId) -> bool {
        id.scheme() == "digest" && id.id() == self.digest_id
    }

    /// `Ok` if only we may change the node at `path`; else the error naming the path and ACL.
    pub(super) fn check(&self, acls: &[zk::Acl], location: impl FnOnce() -> String) -> Result<(), Error> {
        let beyond_read =
            zk::Permission::WRITE | zk::Permission::CREATE | zk::Permission::DELETE | zk::Permission::ADMIN;
        let foreign = acls
            .iter()
            .any(|acl| (acl.permission() & beyond_read) != zk::Permission::NONE && !self.is_ours(acl.auth_id()));
        if !foreign && acls.iter().any(|acl| self.is_ours(acl.auth_id())) {
            return Ok(());
        }
        Err(Error::Insecure {
            location: location(),
            message: format!(
                "its ACL [{}] lets others change it, or is not ours; it was not created by this \
                 identity (with credentials confo only uses nodes that only it may change). Remove the \
                 node, fix its ACL with setAcl, or add foreign_acls=trust to the spec if these writers \
                 are trusted",
                self.describe(acls)
            ),
        })
    }

    /// `world:anyone=ALL, digest:alice=READ`: the ACL without digest hashes.
    fn describe(&self, acls: &[zk::Acl]) -> String {
        acls.iter()
            .map(|acl| {
                let id = acl.auth_id();
                let who = match id.scheme() {
                    "digest" => id.id().split(':').next().unwrap_or_default(),
                    _ => id.id(),
                };
                let mine = if self.is_ours(id) { " (this identity)" } else { "" };
                format!("{}:{who}={}{mine}", id.scheme(), acl.permission())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Standard base64 with padding (what ZooKeeper's digest ids use).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_match_zookeepers() {
        // From ZooKeeper's DigestAuthenticationProvider: super:test → D/InIHSb7yEEbrWz8b9l71RjZJU=
        assert_eq!(Trust::new("super", "test").digest_id, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn only_nodes_that_others_cannot_change_pass() {
        let trust = Trust::new("alice", "pw");
        let ours = zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", &trust.digest_id));
        let world_read = zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone());
        let world_all = zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone());
        let mallory = zk::Acl::new(zk::Permission::WRITE, zk::AuthId::new("digest", "mallory:xyz"));
        let at = || "znode /confo/payments".to_owned();
        assert!(trust.check(std::slice::from_ref(&ours), at).is_ok());
        assert!(trust.check(&[ours.clone(), world_read.clone()], at).is_ok());
        for acls in [vec![world_all.clone()], vec![ours.clone(), mallory], vec![world_read], vec![]] {
            let err = trust.check(&acls, at).unwrap_err().to_string();
            assert!(err.contains("/confo/payments") && !err.contains(&trust.digest_id), "{err}");
        }
        let err = trust.check(&[world_all], at).unwrap_err().to_string();
        assert!(err.contains("world:anyone=ALL"), "{err}");
    }
}
