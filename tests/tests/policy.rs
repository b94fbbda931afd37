//! The operator-signed transition policy decides, not the validators'
//! configuration: the floor holds a shrink at the threshold, and the
//! quorum follows f.

use pqvault_tests::{recover_from, Mesh};
use std::fs;
use vault::manifest::Manifest;

/// 4 of 7 under f = 1 and floor 4, no spares: two holders die (the most
/// f = 1 heals: quorum 5 of 7). The five survivors re-share, and the
/// majority rule's 3 of 5 is lifted to the floor: 4 of 5. Without the
/// signed floor (the legacy rules, `heal.rs`) the same mesh goes to 3 of 5.
#[tokio::test(flavor = "current_thread")]
async fn a_signed_floor_keeps_a_shrink_at_the_threshold() {
    let mut mesh = Mesh::with_policy(7, 4, 0, 1, 4);
    mesh.set_reshare_after_ms(300);
    mesh.start_all();
    mesh.kill9(5);
    mesh.kill9(6);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 4], 2).await;
    let dir = mesh.nodes[0]
        .dir
        .join(format!("data/vaults/{}/epoch-2", mesh.vault_id));
    let m2 = Manifest::decode(&fs::read(dir.join("manifest.pqvm")).unwrap()).unwrap();
    assert_eq!((m2.body().threshold, m2.body().n), (4, 5));
    recover_from(&mesh, &[0, 2, 3, 4], 2, 4);
    // Every holder kept the policy it imported.
    for i in 0..5 {
        assert!(mesh.nodes[i]
            .dir
            .join(format!("data/policies/{}.pqvl", mesh.vault_id))
            .exists());
    }
}
