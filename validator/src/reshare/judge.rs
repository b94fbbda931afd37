//! Judging the recipients of a re-share (D57): what each holder in the
//! round concludes, at [`judge_after`], from what a recipient answers about
//! its new share, and the judgements kept with the epoch being left.

use super::relay::{dealer_member, receipt_at, signed_entry};
use super::wire::Plan;
use crate::rounds;
use crate::state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use vault::manifest::VaultId;

/// How long after a round starts here a dealer asks each recipient that
/// accepted its sub-share what became of its new share
/// (`judge_recipients`), for a leader that gives the dealing `window`
/// (`heal.reshare_window_ms`): three quarters of it, long after an honest
/// recipient made its share (milliseconds once its sub-shares are in) and
/// before the leader gives the attempt up.
pub fn judge_after(window: std::time::Duration) -> std::time::Duration {
    window * 3 / 4
}

/// The dealer indices a recipient's round status names as missing, as
/// given (not checked against the plan): empty when it names none or the
/// status is malformed.
pub fn missing_from(status: &serde_json::Value) -> Vec<u64> {
    status["missing_from"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}

/// Why a recipient's answer about its new share, asked [`judge_after`]
/// after the round started here, shows it withholding, given that it
/// accepted our sub-share and that the dealers in `acknowledged` (ours
/// included) hold its signed receipt for theirs: it claims one of those
/// never came; it holds every sub-share and made no new share; or it no
/// longer knows the round (`status` `None`: answered 404) without having
/// restarted since the round started. A recipient that is complete, or
/// names only dealers it never acknowledged, is not judged here.
pub fn withheld(
    status: Option<&serde_json::Value>,
    acknowledged: &[u8],
    restarted: bool,
) -> Option<String> {
    let Some(v) = status else {
        return (!restarted)
            .then(|| "it accepted our sub-share and no longer knows the round".to_string());
    };
    if v["complete"] == true {
        return None;
    }
    let missing = missing_from(v);
    if let Some(d) = acknowledged
        .iter()
        .find(|d| missing.contains(&u64::from(**d)))
    {
        Some(format!(
            "it claims the sub-share of share {d} never came, though it acknowledged it"
        ))
    } else if missing.is_empty() {
        Some("it holds every sub-share and made no new share".to_string())
    } else {
        None
    }
}

/// What a [`Judgement`] needs to learn next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The recipient's round status ([`Judgement::status`]).
    Status,
    /// Whether it restarted since the round started here
    /// ([`Judgement::restarted`]): asked only when it forgot a round it
    /// acknowledged our sub-share in.
    Restarted,
    /// What dealer `d`, which the recipient names missing, holds
    /// ([`Judgement::dealer`]).
    Receipt(u8),
}

/// What the recipient answered about the round.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Its status (an honest recipient answers well-formed JSON; anything
    /// else is given as `Null`, which names nothing missing).
    Known(serde_json::Value),
    /// It no longer knows the round (404).
    Forgotten,
    /// Busy or down: says nothing about withholding.
    Unanswered,
}

/// What a dealer the recipient names missing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dealer {
    /// The recipient's signed receipt for its sub-share: the claim is a lie.
    Receipt,
    /// No receipt, from a dealer `alive` in our view or not.
    NoReceipt { alive: bool },
    /// Not a member we can ask: nothing is concluded.
    Unknown,
}

/// One holder's judgement of one re-share recipient, without I/O: it says
/// what it needs ([`Judgement::next`]), is given the answers, and once
/// `next` is `None` gives the dealers to accuse ([`Judgement::accusations`])
/// and, with the epoch's accusation count, its verdict
/// ([`Judgement::verdict`]). The driver (`judge_recipients`) asks the
/// network and keeps the accusations; the rules are all here.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Our share index if we dealt in the round.
    from: Option<u8>,
    /// Whether we hold its receipt for our sub-share.
    ours: bool,
    /// The round's dealers.
    dealers: Vec<u8>,
    /// The policy's liar bound.
    f: u8,
    status: Option<Status>,
    restarted: Option<bool>,
    /// Dealers named missing that are still to be asked.
    to_ask: Vec<u8>,
    /// Dealers whose receipt shows it received their sub-share.
    acknowledged: Vec<u8>,
    /// Live dealers named missing with no receipt.
    accused: Vec<u8>,
}

impl Judgement {
    /// The judgement of a recipient of a round with `dealers`, by a holder
    /// that dealt as `from` (if it did) and holds the recipient's receipt
    /// for it (`ours`), under a policy of `f` liars.
    pub fn new(from: Option<u8>, ours: bool, dealers: &[u8], f: u8) -> Self {
        let ours = ours && from.is_some();
        Judgement {
            from,
            ours,
            dealers: dealers.to_vec(),
            f,
            status: None,
            restarted: None,
            to_ask: Vec::new(),
            acknowledged: from.filter(|_| ours).into_iter().collect(),
            accused: Vec::new(),
        }
    }

    /// What to learn next, or `None` once the judgement can be made.
    pub fn next(&self) -> Option<Need> {
        match &self.status {
            None => Some(Need::Status),
            Some(Status::Forgotten) if self.restarted.is_none() => Some(Need::Restarted),
            _ => self.to_ask.first().map(|d| Need::Receipt(*d)),
        }
    }

    /// Its answer to [`Need::Status`].
    pub fn status(&mut self, status: Status) {
        if let Status::Known(v) = &status {
            if v["complete"] != true {
                for d in missing_from(v) {
                    let Ok(d) = u8::try_from(d) else { continue };
                    if !self.dealers.contains(&d)
                        || self.acknowledged.contains(&d)
                        || self.to_ask.contains(&d)
                        || self.accused.contains(&d)
                    {
                        continue;
                    }
                    if Some(d) == self.from {
                        // We dealt it and hold no receipt: it would not sign.
                        self.accused.push(d);
                    } else {
                        self.to_ask.push(d);
                    }
                }
            }
        }
        if status == Status::Forgotten && !self.ours {
            // Forgotten without our receipt: nothing shows it knew it.
            self.restarted = Some(true);
        }
        self.status = Some(status);
    }

    /// The answer to [`Need::Restarted`].
    pub fn restarted(&mut self, restarted: bool) {
        self.restarted = Some(restarted);
    }

    /// The answer to [`Need::Receipt`] for dealer `d`.
    pub fn dealer(&mut self, d: u8, holds: Dealer) {
        self.to_ask.retain(|x| *x != d);
        match holds {
            Dealer::Receipt => self.acknowledged.push(d),
            Dealer::NoReceipt { alive: true } => self.accused.push(d),
            Dealer::NoReceipt { alive: false } | Dealer::Unknown => {}
        }
    }

    /// The status it answered, if it answered one.
    pub fn answered(&self) -> Option<&serde_json::Value> {
        match &self.status {
            Some(Status::Known(v)) => Some(v),
            _ => None,
        }
    }

    /// The dealers it named missing without a receipt to disprove it: each
    /// an accusation, counted over the epoch's re-shares.
    pub fn accusations(&self) -> &[u8] {
        &self.accused
    }

    /// Why it withheld its new share, given the number of distinct live
    /// dealers it accused in this epoch's re-shares (ours included): an
    /// answer no honest recipient gives ([`withheld`]), or more than `f`
    /// accusations (an honest recipient names only dealers that withheld,
    /// at most `f`). `None` while the judgement is not made, when it did not
    /// answer, or when nothing shows it withholding.
    pub fn verdict(&self, accused_in_epoch: usize) -> Option<String> {
        if self.next().is_some() {
            return None;
        }
        let status = match self.status.as_ref()? {
            Status::Unanswered => return None,
            Status::Forgotten => None,
            Status::Known(v) => Some(v),
        };
        withheld(status, &self.acknowledged, self.restarted.unwrap_or(false)).or_else(|| {
            (accused_in_epoch > usize::from(self.f)).then(|| {
                format!(
                    "it named {accused_in_epoch} live dealers missing in this epoch's re-shares, none of whose sub-shares it acknowledged; at most {} withhold",
                    self.f
                )
            })
        })
    }
}

/// Our own judgement of the recipients of round `round`, made
/// [`judge_after`] after it started here if the round is still open; every
/// holder taking part (`from`: our share index if we deal) makes it. Each
/// recipient that [`withheld`] its new share, on evidence every holder can
/// check (its own answers, the receipts it signed), or that named more than
/// `f` live dealers missing without a receipt to disprove it, counts as
/// lost here until the next epoch (`crate::custody::failed`), so we vote
/// for a next attempt that leaves it out. A proposal to leave a recipient
/// out is certified only when a quorum judged so: a leader alone cannot
/// have an honest recipient replaced. The rules are [`Judgement`]'s; this
/// driver asks the network and keeps the outcome.
pub(super) async fn judge_recipients(state: Arc<State>, round: [u8; 16], from: Option<u8>) {
    tokio::time::sleep(judge_after(state.reshare_window)).await;
    let Some((plan, receipts, started_unix)) = state.reshares.lock().ok().and_then(|all| {
        all.get(&round).map(|r| {
            let ours: std::collections::BTreeSet<u8> = r.receipts.keys().copied().collect();
            (r.plan.clone(), ours, r.started_unix)
        })
    }) else {
        return; // committed, aborted or pruned: nothing to judge
    };
    let me = state.identity.public().fingerprint();
    let f = crate::proposals::rules(&state, &plan.vault_id).f;
    let path = format!("/v1/reshare/{}", hex::encode(round));
    // Whether a judgement changed, to be written to disk.
    let mut changed = false;
    for (k, fp) in plan.recipients.iter().enumerate() {
        let k = k as u8 + 1;
        if *fp == me {
            continue;
        }
        let Ok((m, who)) = rounds::member_with(&state, fp).await else {
            continue;
        };
        let mut j = Judgement::new(from, receipts.contains(&k), &plan.dealers, f);
        while let Some(need) = j.next() {
            match need {
                Need::Status => j.status(match state.ctl.get(&m, &path, 1 << 16).await {
                    Ok(r) if r.status == 200 => Status::Known(
                        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
                    ),
                    Ok(r) if r.status == 404 => Status::Forgotten,
                    Ok(_) | Err(_) => Status::Unanswered,
                }),
                Need::Restarted => j.restarted(match state.probe_hello(&m).await {
                    // Its incarnation is its boot time: a boot since the
                    // round started (give or take clock skew) is a restart.
                    crate::state::Probe::Ok(h, _) => h.incarnation + 2_000 > started_unix,
                    _ => true,
                }),
                Need::Receipt(d) => {
                    let holds = match dealer_member(&state, &plan, d).await {
                        None => Dealer::Unknown,
                        Some(dm) if receipt_at(&state, &plan, d, &dm, k, &who).await => {
                            Dealer::Receipt
                        }
                        Some(dm) => Dealer::NoReceipt {
                            alive: state.is_alive(&dm.id),
                        },
                    };
                    j.dealer(d, holds);
                }
            }
        }
        // What it showed us, signed, for a member it does not answer.
        if let Some(v) = j.answered() {
            if signed_entry(&plan, k, &who, v).is_some() {
                let shown = serde_json::json!({
                    "entry": v["entry"],
                    "entry_signature": v["entry_signature"],
                    "check": v["check"],
                    "check_signature": v["check_signature"],
                });
                if let Ok(mut all) = state.reshares.lock() {
                    if let Some(r) = all.get_mut(&round) {
                        r.seen.insert(k, shown);
                    }
                }
            }
        }
        for d in j.accusations() {
            changed |= accuse(&state, &plan, &m.id, *d);
        }
        let Some(why) = j.verdict(accused(&state, &plan, &m.id)) else {
            continue;
        };
        tracing::warn!(vault = %plan.vault_id, epoch = plan.epoch, round = %hex::encode(round), peer = %m.id,
            "recipient {k} withheld its new share: {why}; its share counts as lost here");
        state.metrics.bad_dealing("recipient");
        if let Ok(mut w) = state.withheld.lock() {
            changed |= w
                .insert((plan.vault_id, m.id.clone()), plan.epoch)
                .is_none();
        }
    }
    if changed {
        persist_judgements(&state, &plan.vault_id, plan.epoch);
    }
}

/// Writes our judgements of `vault`'s recipients in re-shares of `epoch`
/// to disk (`Store::set_judgements`), so that a restart keeps them.
pub fn persist_judgements(state: &State, vault: &VaultId, epoch: u64) {
    let mut judged: BTreeMap<String, (bool, std::collections::BTreeSet<u8>)> = BTreeMap::new();
    if let Ok(w) = state.withheld.lock() {
        for ((v, peer), e) in w.iter() {
            if v == vault && *e == epoch {
                judged.entry(peer.clone()).or_default().0 = true;
            }
        }
    }
    if let Ok(a) = state.accusations.lock() {
        for ((v, peer), (e, dealers)) in a.iter() {
            if v == vault && *e == epoch {
                judged.entry(peer.clone()).or_default().1 = dealers.clone();
            }
        }
    }
    if let Ok(store) = state.store.lock() {
        if let Err(e) = store.set_judgements(vault, epoch, &judged) {
            tracing::warn!(%vault, "judgements of re-share recipients not stored: {e}");
        }
    }
}

/// Takes our stored judgements of the recipients of every vault we hold
/// at its current epoch back into memory, at start.
pub fn restore_judgements(state: &State) {
    #[allow(clippy::type_complexity)]
    let held: Vec<(
        VaultId,
        u64,
        BTreeMap<String, (bool, std::collections::BTreeSet<u8>)>,
    )> = match state.store.lock() {
        Ok(s) => s
            .vaults()
            .map(|(id, h)| (*id, h.epoch, s.judgements(id, h.epoch)))
            .collect(),
        Err(_) => return,
    };
    for (vault, epoch, judged) in held {
        for (peer, (withheld, dealers)) in judged {
            if withheld {
                if let Ok(mut w) = state.withheld.lock() {
                    w.insert((vault, peer.clone()), epoch);
                }
            }
            if !dealers.is_empty() {
                if let Ok(mut a) = state.accusations.lock() {
                    a.insert((vault, peer), (epoch, dealers));
                }
            }
        }
    }
}

/// Records that recipient `peer` named live dealer `d` missing in a
/// re-share of `plan`'s epoch without a receipt to show for it; whether
/// that is new.
pub(super) fn accuse(state: &State, plan: &Plan, peer: &str, d: u8) -> bool {
    state.accusations.lock().is_ok_and(|mut a| {
        a.entry((plan.vault_id, peer.to_string()))
            .or_insert_with(|| (plan.epoch, Default::default()))
            .1
            .insert(d)
    })
}

/// How many distinct live dealers recipient `peer` named missing in this
/// epoch's re-shares without a receipt ([`accuse`]). An honest recipient
/// names only dealers that withheld from it, at most `f` of them.
pub(super) fn accused(state: &State, plan: &Plan, peer: &str) -> usize {
    state.accusations.lock().map_or(0, |a| {
        a.get(&(plan.vault_id, peer.to_string()))
            .filter(|(e, _)| *e == plan.epoch)
            .map_or(0, |(_, d)| d.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a dealer that dealt as share 2 makes of a recipient's answer:
    /// only an answer that cannot come from an honest recipient which
    /// accepted our sub-share convicts it.
    #[test]
    fn a_recipient_is_judged_withholding_only_on_answers_no_honest_one_gives() {
        let status = |complete: bool, missing: &[u8]| serde_json::json!({"complete": complete, "missing_from": missing});
        // Complete, or waiting for other dealers: not withholding.
        assert_eq!(withheld(Some(&status(true, &[])), &[2], false), None);
        assert_eq!(withheld(Some(&status(false, &[5])), &[2], false), None);
        assert_eq!(withheld(Some(&status(false, &[1, 5])), &[2], false), None);
        // Every sub-share in and no new share, or ours called missing.
        let w = withheld(Some(&status(false, &[])), &[2], false).unwrap();
        assert!(w.contains("made no new share"), "{w}");
        let w = withheld(Some(&status(false, &[2, 5])), &[2], false).unwrap();
        assert!(w.contains("share 2 never came"), "{w}");
        // Another dealer called missing, though its receipt says otherwise.
        let w = withheld(Some(&status(false, &[5])), &[2, 5], false).unwrap();
        assert!(w.contains("share 5 never came"), "{w}");
        // A malformed answer names nothing missing: withholding.
        assert!(withheld(Some(&serde_json::json!({})), &[2], false).is_some());
        // The round forgotten: withholding unless it restarted.
        assert!(withheld(None, &[2], false).is_some());
        assert_eq!(withheld(None, &[2], true), None);
    }

    fn known(complete: bool, missing: &[u8]) -> Status {
        Status::Known(serde_json::json!({"complete": complete, "missing_from": missing}))
    }

    /// Dealers 1, 2, 4 and 6; we dealt as 2; f = 1.
    fn judgement(ours: bool) -> Judgement {
        Judgement::new(Some(2), ours, &[1, 2, 4, 6], 1)
    }

    /// A complete recipient, or one that does not answer, is asked nothing
    /// more. A silent one is judged nothing; a complete one only on the
    /// accusations it made earlier in the epoch.
    #[test]
    fn a_complete_or_silent_recipient_is_asked_only_its_status() {
        for (status, convicted_by_count) in
            [(known(true, &[1, 4]), true), (Status::Unanswered, false)]
        {
            let mut j = judgement(true);
            assert_eq!(j.next(), Some(Need::Status));
            j.status(status);
            assert_eq!(j.next(), None);
            assert!(j.accusations().is_empty());
            assert_eq!(j.verdict(1), None);
            assert_eq!(j.verdict(2).is_some(), convicted_by_count);
        }
    }

    /// A recipient that forgot the round is asked whether it restarted only
    /// when our receipt shows it knew the round.
    #[test]
    fn a_forgotten_round_is_withholding_only_without_a_restart_and_with_our_receipt() {
        let mut j = judgement(false);
        j.status(Status::Forgotten);
        assert_eq!(
            j.next(),
            None,
            "no receipt: nothing shows it knew the round"
        );
        assert_eq!(j.verdict(0), None);

        let mut j = judgement(true);
        j.status(Status::Forgotten);
        assert_eq!(j.next(), Some(Need::Restarted));
        assert_eq!(
            j.verdict(0),
            None,
            "no verdict before the judgement is made"
        );
        let mut restarted = j.clone();
        restarted.restarted(true);
        assert_eq!(restarted.verdict(0), None);
        j.restarted(false);
        let why = j.verdict(0).unwrap();
        assert!(why.contains("no longer knows the round"), "{why}");
    }

    /// Each dealer it names missing is asked for its receipt (ours never:
    /// we know we hold none); a receipt convicts it, a live dealer without
    /// one is an accusation, and only more than f accusations in the epoch
    /// convict it on their own.
    #[test]
    fn named_dealers_are_asked_for_receipts_and_counted_when_live_without() {
        // Names 2 (ours, no receipt), 4, 6 and 9 (not a dealer).
        let mut j = judgement(false);
        j.status(known(false, &[2, 4, 6, 9]));
        assert_eq!(j.accusations(), &[2], "ours is accused without asking");
        assert_eq!(j.next(), Some(Need::Receipt(4)));
        j.dealer(4, Dealer::NoReceipt { alive: true });
        assert_eq!(j.next(), Some(Need::Receipt(6)));
        j.dealer(6, Dealer::NoReceipt { alive: false });
        assert_eq!(j.next(), None);
        assert_eq!(
            j.accusations(),
            &[2, 4],
            "a dead dealer may well have withheld"
        );
        assert_eq!(j.verdict(1), None, "at most f = 1 withhold");
        let why = j.verdict(2).unwrap();
        assert!(why.contains("named 2 live dealers"), "{why}");

        // Dealer 4 holds its receipt: the claim is a lie.
        let mut j = judgement(true);
        j.status(known(false, &[4]));
        j.dealer(4, Dealer::Receipt);
        let why = j.verdict(0).unwrap();
        assert!(why.contains("share 4 never came"), "{why}");

        // A dealer we cannot ask proves nothing either way.
        let mut j = judgement(true);
        j.status(known(false, &[4]));
        j.dealer(4, Dealer::Unknown);
        assert!(j.accusations().is_empty());
        assert_eq!(j.verdict(0), None);
    }

    /// What no honest recipient answers, with our receipt: every sub-share
    /// in and no new share; ours called missing; garbage.
    #[test]
    fn answers_no_honest_recipient_gives_convict_without_asking_anyone() {
        for (status, says) in [
            (known(false, &[]), "made no new share"),
            (known(false, &[2]), "share 2 never came"),
            (Status::Known(serde_json::Value::Null), "made no new share"),
        ] {
            let mut j = judgement(true);
            j.status(status);
            assert_eq!(j.next(), None);
            let why = j.verdict(0).unwrap();
            assert!(why.contains(says), "{why}");
        }
    }
}
