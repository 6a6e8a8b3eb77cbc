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

use crate::model::error::Error;

/// Our identity as ZooKeeper stores it in digest ACLs, to tell our entries from others'.
#[derive(Debug, Clone)]
pub(super) struct Trust {
    /// `user:base64(sha1(user:password))`, as ZooKeeper's `DigestAuthenticationProvider` makes it.
    digest_id: String,
    /// Other digest identities trusted as our own, the writers a reader trusts: `user:hash`,
    /// or `user` alone.
    trusted: Vec<String>,
}

/// The hash ZooKeeper shows in place of a digest id's own to a client without the ADMIN right
/// on the node (3.6 and later).
const MASKED: &str = "x";

impl Trust {
    /// Our identity, and the ids (`digest:user:hash`) of others trusted as ours.
    pub(super) fn new(user: &str, password: &str, trusted: &[String]) -> Self {
        let hash = sha1_smol::Sha1::from(format!("{user}:{password}")).digest().bytes();
        let trusted = trusted.iter().filter_map(|id| id.strip_prefix("digest:")).map(str::to_owned).collect();
        Trust { digest_id: format!("{user}:{}", base64(&hash)), trusted }
    }

    /// Whether a digest id is ours, or one we trust. ZooKeeper masks the hash of every digest
    /// id for a client without the ADMIN right on the node (a reader): such an id is trusted by
    /// its user name, the most a reader can see.
    fn is_ours(&self, id: &zk::AuthId) -> bool {
        if id.scheme() != "digest" {
            return false;
        }
        let seen = id.id();
        let user = seen.split_once(':').map_or(seen, |(user, _)| user);
        let masked = seen.split_once(':').is_some_and(|(_, hash)| hash == MASKED);
        seen == self.digest_id
            || self.trusted.iter().any(|trusted| match trusted.split_once(':') {
                Some((name, _)) if masked => name == user,
                Some(_) => trusted == seen,
                None => trusted == user,
            })
    }

    /// Whether `acls` let an identity other than ours (and the trusted ones) change the node,
    /// or name none of them: the node is not ours to use.
    pub(super) fn others_may_change(&self, acls: &[zk::Acl]) -> bool {
        let beyond_read =
            zk::Permission::WRITE | zk::Permission::CREATE | zk::Permission::DELETE | zk::Permission::ADMIN;
        let foreign = acls
            .iter()
            .any(|acl| (acl.permission() & beyond_read) != zk::Permission::NONE && !self.is_ours(acl.auth_id()));
        foreign || !acls.iter().any(|acl| self.is_ours(acl.auth_id()))
    }

    /// `Ok` if only we may change the node at `path`; else the error naming the path and ACL.
    pub(super) fn check(&self, acls: &[zk::Acl], location: impl FnOnce() -> String) -> Result<(), Error> {
        if !self.others_may_change(acls) {
            return Ok(());
        }
        Err(Error::Insecure {
            location: location(),
            message: format!(
                "its ACL [{}] lets others change it, or is not ours; it was not created by this \
                 identity (with credentials confo only uses nodes that only it may change). A store that \
                 confo 0.1.6.2 or a client without credentials made (world-open nodes): `confo repair \
                 --fix-acls` gives its nodes this identity's ACL (see docs/zookeeper-credentials.md). \
                 Otherwise remove the node, trust its writer with trusted=digest:USER, or add \
                 foreign_acls=trust to the spec if every writer is trusted",
                self.describe(acls)
            ),
        })
    }

    /// `world:anyone=ALL, digest:alice=READ`: the ACL without digest hashes.
    pub(super) fn describe(&self, acls: &[zk::Acl]) -> String {
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
        assert_eq!(Trust::new("super", "test", &[]).digest_id, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn only_nodes_that_others_cannot_change_pass() {
        let trust = Trust::new("alice", "pw", &[]);
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

    #[test]
    fn trusted_writers_are_matched_by_hash_where_shown_and_by_name_where_masked() {
        let writer = Trust::new("writer", "wpw", &[]).digest_id;
        let hash = writer.split_once(':').unwrap().1.to_owned();
        let by_name = Trust::new("reader", "r", &["digest:writer".into()]);
        let by_hash = Trust::new("reader", "r", &[format!("digest:writer:{hash}")]);
        let acl = |id: &str| vec![zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", id))];
        let at = || "znode /confo".to_owned();
        for trust in [&by_name, &by_hash] {
            assert!(trust.check(&acl(&writer), at).is_ok());
            assert!(trust.check(&acl("writer:x"), at).is_ok(), "masked for a reader: the name is all it sees");
            assert!(trust.check(&acl("mallory:x"), at).is_err());
        }
        let impostor = format!("writer:{}", Trust::new("writer", "guess", &[]).digest_id.split_once(':').unwrap().1);
        assert!(by_hash.check(&acl(&impostor), at).is_err(), "a shown hash must be the trusted one");
    }
}
