//! Every pqvault wire and file format has its own magic: a message of one
//! kind can never be decoded as another (the abandon statement once
//! reused the re-share message's `PQVX`).

use std::collections::BTreeMap;
use vault::codec::Kind;

#[test]
fn every_format_has_its_own_magic_and_name() {
    let kinds: [(&str, Kind); 17] = [
        ("identity", vault::identity::PUBLIC_KIND),
        ("secret key", vault::identity::SECRET_KIND),
        ("share", vault::share::SHARE_KIND),
        ("sealed shard", vault::seal::SHARD_KIND),
        ("manifest", vault::manifest::MANIFEST_KIND),
        ("epoch certificate", vault::epoch::CERT_KIND),
        ("policy", vault::governance::POLICY_KIND),
        ("membership removal", vault::membership::REMOVAL_KIND),
        ("artifact", vault::artifact::manifest::ARTIFACT_KIND),
        ("artifact draft", vault::artifact::manifest::DRAFT_KIND),
        ("abandon", vault::artifact::abandon::ABANDON_KIND),
        ("repair", validator::repair::REPAIR_KIND),
        ("proof chain", validator::rounds::PROOF_KIND),
        ("re-share", validator::reshare::RESHARE_KIND),
        ("proposal", validator::transition::proposal::PROPOSAL_KIND),
        ("vote", validator::transition::proposal::VOTE_KIND),
        (
            "certified proposal",
            validator::transition::proposal::CERTIFIED_KIND,
        ),
    ];
    let mut magics = BTreeMap::new();
    let mut names = BTreeMap::new();
    for (what, k) in kinds {
        if let Some(other) = magics.insert(k.magic, what) {
            panic!(
                "{what} and {other} share the magic {:?}",
                String::from_utf8_lossy(&k.magic)
            );
        }
        if let Some(other) = names.insert(k.name, what) {
            panic!("{what} and {other} share the name {:?}", k.name);
        }
    }
}
