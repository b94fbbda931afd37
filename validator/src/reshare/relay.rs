//! What a holder keeps for others (D57): the receipts recipients signed
//! for its sub-shares, and the signed entries recipients showed it, served
//! to members a recipient does not answer.

use super::wire::{
    entry_statement, receipt_statement, signature_from_hex, signature_hex, Plan, ENTRY_DOMAIN,
    RECEIPT_DOMAIN,
};
use crate::config::Member;
use crate::epochs::PrepareReply;
use crate::rounds;
use crate::state::State;
use std::sync::Arc;
use vault::identity::PublicIdentity;
use vault::sign::HybridSignature;

/// The receipt in a recipient's answer to our sub-share, if it carries
/// one that `who` signed for `(from, index, sealed_hash)`.
pub(super) fn parse_receipt(
    plan: &Plan,
    from: u8,
    index: u8,
    sealed_hash: &[u8; 32],
    who: &PublicIdentity,
    answer: &[u8],
) -> Option<HybridSignature> {
    let text = std::str::from_utf8(answer).ok()?;
    let sig = text
        .lines()
        .find_map(|l| l.strip_prefix("receipt "))
        .and_then(signature_from_hex)?;
    who.verifying_key()
        .verify(
            RECEIPT_DOMAIN,
            &receipt_statement(plan, from, index, sealed_hash),
            &sig,
        )
        .ok()?;
    Some(sig)
}

/// `GET /v1/reshare/{round}/receipt/{k}`: recipient `k`'s receipt for the
/// sub-share we dealt it, if we hold one.
pub fn receipt(state: &State, round: &[u8; 16], k: u8) -> Option<serde_json::Value> {
    let all = state.reshares.lock().ok()?;
    let r = all.get(round)?;
    let (hash, sig) = r.receipts.get(&k)?;
    Some(serde_json::json!({
        "from": r.dealt_as?,
        "sealed_hash": hex::encode(hash),
        "signature": signature_hex(sig),
    }))
}

/// The member holding share `d` of the epoch `plan` leaves.
pub(super) async fn dealer_member(state: &Arc<State>, plan: &Plan, d: u8) -> Option<Member> {
    let (manifest, _) = rounds::current_manifest(state, &plan.vault_id).ok()?;
    let fp = manifest.body().entry(d)?.recipient;
    rounds::member_with(state, &fp).await.ok().map(|(m, _)| m)
}

/// Whether dealer `d` of `plan` (member `m`) holds recipient `k`'s signed
/// receipt for its sub-share, asked of `d` itself: proof that `k`
/// received it.
pub(super) async fn receipt_at(
    state: &Arc<State>,
    plan: &Plan,
    d: u8,
    m: &Member,
    k: u8,
    who: &PublicIdentity,
) -> bool {
    let path = format!("/v1/reshare/{}/receipt/{k}", hex::encode(plan.round));
    let Ok(r) = state.ctl.get(m, &path, 1 << 16).await else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
        return false;
    };
    let hash: Option<[u8; 32]> = v["sealed_hash"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok());
    let sig = v["signature"].as_str().and_then(signature_from_hex);
    match (v["from"].as_u64(), hash, sig) {
        (Some(from), Some(hash), Some(sig)) if from == u64::from(d) => who
            .verifying_key()
            .verify(RECEIPT_DOMAIN, &receipt_statement(plan, d, k, &hash), &sig)
            .is_ok(),
        _ => false,
    }
}

/// `GET /v1/reshare/{round}/seen/{k}`: recipient `k`'s signed status as it
/// showed it to us, if we hold it (its entry's signature verified).
pub fn seen(state: &State, round: &[u8; 16], k: u8) -> Option<serde_json::Value> {
    let all = state.reshares.lock().ok()?;
    all.get(round)?.seen.get(&k).cloned()
}

/// The entry in recipient `k`'s status `v`, if its signature by `who`
/// verifies for `plan`: proof that `who` made its new share.
pub(super) fn signed_entry(
    plan: &Plan,
    k: u8,
    who: &PublicIdentity,
    v: &serde_json::Value,
) -> Option<PrepareReply> {
    let entry: PrepareReply = serde_json::from_value(v.get("entry")?.clone()).ok()?;
    if entry.index != k || entry.recipient != who.fingerprint().to_hex() {
        return None;
    }
    let sig = signature_from_hex(v.get("entry_signature")?.as_str()?)?;
    who.verifying_key()
        .verify(ENTRY_DOMAIN, &entry_statement(plan, &entry)?, &sig)
        .ok()?;
    Some(entry)
}

/// Recipient `k`'s signed status for `plan`, asked of the other
/// recipients, for when `k` does not answer us: what it showed them
/// (`seen`), its entry's signature verified against its identity. A
/// relayer cannot forge it; a recipient that answers everyone but us
/// (the leader, say) thus cannot stall the attempt alone (D57).
pub async fn relayed(
    state: &Arc<State>,
    plan: &Plan,
    k: u8,
) -> Option<(PrepareReply, serde_json::Value)> {
    let fp = plan.recipients.get(usize::from(k).checked_sub(1)?)?;
    let (_, who) = rounds::member_with(state, fp).await.ok()?;
    let me = state.identity.public().fingerprint();
    let path = format!("/v1/reshare/{}/seen/{k}", hex::encode(plan.round));
    for other in plan.recipients.iter().filter(|r| *r != fp && **r != me) {
        let Ok((m, _)) = rounds::member_with(state, other).await else {
            continue;
        };
        let Ok(r) = state.ctl.get(&m, &path, 1 << 16).await else {
            continue;
        };
        if r.status != 200 {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            continue;
        };
        if let Some(entry) = signed_entry(plan, k, &who, &v) {
            tracing::info!(round = %hex::encode(plan.round), relayer = %m.id, "recipient {k}'s signed status relayed (it did not answer us)");
            return Some((entry, v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::wire::tests::plan;
    use super::*;

    /// The entry statement's layout, and a relayed entry taken only with
    /// its recipient's own signature over exactly that entry.
    #[test]
    fn a_relayed_entry_needs_its_recipients_signature() {
        use vault::identity::SecretIdentity;
        let k4 = SecretIdentity::generate("v4").unwrap();
        let other = SecretIdentity::generate("v5").unwrap();
        let mut p = plan();
        p.recipients[3] = k4.public().fingerprint();
        let entry = PrepareReply {
            index: 4,
            recipient: k4.public().fingerprint().to_hex(),
            recipient_name: "v4".into(),
            blob_hash: hex::encode([0xbb; 32]),
            share_commitment: hex::encode([0xcc; 32]),
        };
        let st = entry_statement(&p, &entry).unwrap();
        let mut want = vec![7u8; 16];
        want.extend([3u8; 16]);
        want.extend(5u64.to_be_bytes());
        want.push(4);
        want.extend(k4.public().fingerprint().as_bytes());
        want.extend([0xbb; 32]);
        want.extend([0xcc; 32]);
        assert_eq!(hex::encode(&st), hex::encode(&want));
        let signed = |by: &SecretIdentity, e: &PrepareReply| {
            let sig = by
                .signing_key()
                .sign(ENTRY_DOMAIN, &entry_statement(&p, e).unwrap())
                .unwrap();
            serde_json::json!({"entry": e, "entry_signature": signature_hex(&sig)})
        };
        let v = signed(&k4, &entry);
        assert_eq!(signed_entry(&p, 4, k4.public(), &v), Some(entry.clone()));
        // Another index, another signer, an altered entry, no signature.
        assert_eq!(signed_entry(&p, 3, k4.public(), &v), None);
        assert_eq!(
            signed_entry(&p, 4, k4.public(), &signed(&other, &entry)),
            None
        );
        let mut altered = v.clone();
        altered["entry"]["share_commitment"] = hex::encode([0xdd; 32]).into();
        assert_eq!(signed_entry(&p, 4, k4.public(), &altered), None);
        assert_eq!(
            signed_entry(&p, 4, k4.public(), &serde_json::json!({"entry": entry})),
            None
        );
    }

    /// A receipt's layout, and one taken only if its recipient signed it
    /// for exactly that dealer, index and sealed sub-share.
    #[test]
    fn a_receipt_binds_the_dealer_the_index_and_the_sealed_bytes() {
        use vault::identity::SecretIdentity;
        let k = SecretIdentity::generate("v4").unwrap();
        let p = plan();
        let hash = [0xee; 32];
        let st = receipt_statement(&p, 2, 4, &hash);
        let mut want = vec![7u8; 16];
        want.extend([3u8; 16]);
        want.extend(5u64.to_be_bytes());
        want.extend([2, 4]);
        want.extend(hash);
        assert_eq!(hex::encode(&st), hex::encode(&want));
        let sig = k.signing_key().sign(RECEIPT_DOMAIN, &st).unwrap();
        let answer = format!("accepted\nreceipt {}\n", signature_hex(&sig));
        let parse = |from, index, hash: &[u8; 32], answer: &str| {
            parse_receipt(&p, from, index, hash, k.public(), answer.as_bytes()).is_some()
        };
        assert!(parse(2, 4, &hash, &answer));
        assert!(!parse(1, 4, &hash, &answer));
        assert!(!parse(2, 3, &hash, &answer));
        assert!(!parse(2, 4, &[0xef; 32], &answer));
        // An older recipient's answer carries none.
        assert!(!parse(2, 4, &hash, "accepted\n"));
    }
}
