//! `GET /v1/audit/ropa` (SPEC §7, GDPR Art. 30): the record of processing, per partner and
//! purpose, what it processes, on which legal basis and how often, over a period.

use chrono::{DateTime, Utc};
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::values::{ConsentId, PrincipalId};
use consent_ledger_projections::authorization::AuthorizationView;
use consent_ledger_projections::model::DpaView;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    csv_text, format, fresh_target, json_text, sees_all, tail, time_param, Format, Rendered,
    CSV_TYPE,
};
use crate::auth::Caller;
use crate::error::AppError;
use crate::query::QueryParams;
use crate::state::AppState;

/// One partner's entry in the Art. 30 record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RopaEntry {
    pub partner_id: String,
    pub name: String,
    pub kind: String,
    pub country: String,
    pub dpa_ref: String,
    /// Of the consents granted to it in force at any time in the period.
    pub purposes: Vec<String>,
    pub data_categories: Vec<String>,
    pub legal_bases: Vec<String>,
    /// DPA references its consents name (Art. 28 contracts).
    pub consent_dpa_refs: Vec<String>,
    pub consents_in_force: usize,
    pub allowed_reads: u64,
    pub denied_reads: u64,
    /// Of the allowed reads, those the ledger served itself, by channel (SPEC §14): `webhook`
    /// (tracking deliveries, and the subscription items decided for them), `pull`.
    pub allowed_by_channel: std::collections::BTreeMap<String, u64>,
    /// Its agreements in the DPA register in force at any time in the period (SPEC §16): role,
    /// validity, sub-processors with their countries, transfer mechanism.
    pub dpas: Vec<DpaView>,
    /// The carrier's authorizations of it in force at any time in the period (SPEC §16): the
    /// class of shipments, purposes, categories and legal basis of each, and its DPA.
    pub authorizations: Vec<AuthorizationView>,
}

/// The Art. 30 record of processing for a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ropa {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub partners: Vec<RopaEntry>,
}

/// `GET /v1/audit/ropa` without HTTP.
#[tracing::instrument(level = "debug", skip_all, fields(role = %caller.role))]
pub async fn ropa_view(
    state: &AppState,
    caller: &Caller,
    query: &str,
) -> Result<Rendered, AppError> {
    let q = QueryParams::parse(query, &["from", "to", "format", "at_least_as_fresh"])?;
    let format = format(&q, &[Format::Json, Format::Csv])?;
    if !sees_all(caller) {
        return Err(AppError::Forbidden(
            "the record of processing is for privacy officers and regulators".into(),
        ));
    }
    let from = time_param(&q, "from")?.ok_or_else(|| AppError::invalid("from", "required"))?;
    let to = time_param(&q, "to")?.ok_or_else(|| AppError::invalid("to", "required"))?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    let target = fresh_target(state, &q).await?;
    let behind = {
        // Its position and its counts read with no page applied in between.
        let _still = state.gdpr.hold().await;
        let applied = state.store.gdpr_position().await?;
        (target.get().saturating_sub(applied.get()) > state.config.audit_tail_after).then_some((
            applied,
            state
                .store
                .gdpr_counts(from.timestamp_micros(), to.timestamp_micros())
                .await?,
        ))
    };
    let counts = match behind {
        // Far behind (a load it cannot keep up with): the log's decisions it has not applied
        // are counted from the log, rather than the record waiting for all of them.
        Some((applied, mut counts)) => {
            tail::add_counts(state, applied, target, (from, to), &mut counts).await?;
            counts
        }
        None => {
            state.gdpr.catch_up_to(target).await?;
            state
                .store
                .gdpr_counts(from.timestamp_micros(), to.timestamp_micros())
                .await?
        }
    };
    let answer = build_ropa(state, from, to, counts);
    Ok(match format {
        Format::Csv => Rendered {
            content_type: CSV_TYPE,
            body: ropa_csv(&answer)?,
            next_after: None,
        },
        _ => Rendered {
            content_type: "application/json",
            body: json_text(&answer)?,
            next_after: None,
        },
    })
}

/// Consents read per hold of the read-model lock while the record of processing is built: the
/// decision path waits for the lock, so no scan holds it for more than this many (SPEC §11).
const ROPA_CHUNK: usize = 1_024;

/// What the record of processing gathers of one partner's consents in force in the period.
#[derive(Default)]
struct RopaConsents {
    purposes: std::collections::BTreeSet<String>,
    categories: std::collections::BTreeSet<String>,
    bases: std::collections::BTreeSet<String>,
    dpas: std::collections::BTreeSet<String>,
    in_force: usize,
}

/// Builds the Art. 30 record from the read model, a chunk of consents per hold of its lock (the
/// lock is released between chunks, so decisions go on; a consent granted meanwhile may or may
/// not be counted, as if the record had been made a moment earlier or later).
pub fn build_ropa(
    state: &AppState,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    counts: std::collections::BTreeMap<String, consent_ledger_store::gdpr::PartnerCounts>,
) -> Ropa {
    use std::collections::BTreeMap;
    use std::ops::Bound;
    let mut by_partner: BTreeMap<PrincipalId, RopaConsents> = BTreeMap::new();
    let mut after: Option<ConsentId> = None;
    loop {
        let model = state.projector.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut read = 0;
        for (id, c) in model
            .consents
            .range((lower, Bound::Unbounded))
            .take(ROPA_CHUNK)
        {
            after = Some(*id);
            read += 1;
            let starts = c.valid_from.max(c.granted_at);
            let ends = [c.valid_until, c.revocation.as_ref().map(|r| r.revoked_at)]
                .into_iter()
                .flatten()
                .min();
            if starts >= to || ends.is_some_and(|e| e <= from) {
                continue;
            }
            let entry = by_partner.entry(c.partner_id.into()).or_default();
            entry.in_force += 1;
            entry
                .purposes
                .extend(c.purposes.iter().map(|x| x.to_string()));
            entry
                .categories
                .extend(c.data_categories.iter().map(|x| x.to_string()));
            entry.bases.insert(c.legal_basis.to_string());
            entry.dpas.insert(c.dpa_ref.to_string());
        }
        drop(model);
        if read < ROPA_CHUNK {
            break;
        }
    }
    type Partners = Vec<(PrincipalId, String, PartnerProfile)>;
    let mut authorized: BTreeMap<PrincipalId, Vec<AuthorizationView>> = BTreeMap::new();
    let (partners, mut agreements): (Partners, BTreeMap<PrincipalId, Vec<DpaView>>) = {
        let model = state.projector.read();
        let partners = model
            .principals
            .values()
            .filter_map(|p| Some((p.id, p.name.to_string(), p.partner.clone()?)))
            .collect();
        let mut agreements: BTreeMap<PrincipalId, Vec<DpaView>> = BTreeMap::new();
        for d in model.dpas.values() {
            let ends = [d.valid_until, d.terminated_at].into_iter().flatten().min();
            if d.signed_at < to && ends.is_none_or(|e| e > from) {
                agreements
                    .entry(d.partner_id.into())
                    .or_default()
                    .push(d.clone());
            }
        }
        for a in model.authorizations.values() {
            let ends = [a.valid_until, a.revoked_at].into_iter().flatten().min();
            if a.valid_from.max(a.granted_at) < to && ends.is_none_or(|e| e > from) {
                let mut a = a.clone();
                a.status = a.status_at(to);
                authorized.entry(a.partner_id.into()).or_default().push(a);
            }
        }
        (partners, agreements)
    };
    let mut entries: Vec<RopaEntry> = Vec::new();
    for (id, name, profile) in partners {
        let consents = by_partner.remove(&id).unwrap_or_default();
        let n = counts.get(&id.to_string()).cloned().unwrap_or_default();
        let dpas = agreements.remove(&id).unwrap_or_default();
        let authorizations = authorized.remove(&id).unwrap_or_default();
        if consents.in_force == 0
            && n.allowed == 0
            && n.denied == 0
            && dpas.is_empty()
            && authorizations.is_empty()
        {
            continue;
        }
        entries.push(RopaEntry {
            partner_id: id.to_string(),
            name,
            kind: profile.kind.to_string(),
            country: profile.country.to_string(),
            dpa_ref: profile.dpa_ref.to_string(),
            purposes: consents.purposes.into_iter().collect(),
            data_categories: consents.categories.into_iter().collect(),
            legal_bases: consents.bases.into_iter().collect(),
            consent_dpa_refs: consents.dpas.into_iter().collect(),
            consents_in_force: consents.in_force,
            allowed_reads: n.allowed,
            denied_reads: n.denied,
            allowed_by_channel: n.allowed_by_channel,
            dpas,
            authorizations,
        });
    }
    entries.sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
    Ropa {
        from,
        to,
        generated_at: state.clock.now(),
        partners: entries,
    }
}

const CSV_ROPA_HEADER: [&str; 18] = [
    "partner_id",
    "name",
    "kind",
    "country",
    "dpa_ref",
    "purposes",
    "data_categories",
    "legal_bases",
    "consent_dpa_refs",
    "consents_in_force",
    "allowed_reads",
    "denied_reads",
    "webhook_reads",
    "pull_reads",
    "dpa_roles",
    "dpa_sub_processors",
    "dpa_transfer_mechanisms",
    "authorizations",
];

fn ropa_csv(r: &Ropa) -> Result<String, AppError> {
    csv_text(
        CSV_ROPA_HEADER,
        r.partners.iter().map(|p| {
            [
                p.partner_id.clone(),
                p.name.clone(),
                p.kind.clone(),
                p.country.clone(),
                p.dpa_ref.clone(),
                p.purposes.join(";"),
                p.data_categories.join(";"),
                p.legal_bases.join(";"),
                p.consent_dpa_refs.join(";"),
                p.consents_in_force.to_string(),
                p.allowed_reads.to_string(),
                p.denied_reads.to_string(),
                p.allowed_by_channel
                    .get("webhook")
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                p.allowed_by_channel
                    .get("pull")
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                p.dpas
                    .iter()
                    .map(|d| format!("{}:{}", d.reference, d.role))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.dpas
                    .iter()
                    .flat_map(|d| &d.sub_processors)
                    .map(|s| format!("{} ({})", s.name, s.country))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.dpas
                    .iter()
                    .filter_map(|d| d.transfer_mechanism.map(|t| t.to_string()))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.authorizations
                    .iter()
                    .map(|a| format!("{}:{}", a.id, a.legal_basis))
                    .collect::<Vec<_>>()
                    .join(";"),
            ]
        }),
    )
}
