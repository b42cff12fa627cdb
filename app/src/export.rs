//! Export bundles (SPEC §6, §7 `/v1/audit/export`, §8 `export`): the selected events with their
//! leaf data and inclusion proofs against a checkpoint signed for the export, optionally with a
//! consistency proof from an older tree size in the header.
//!
//! Export path, streamed (a bundle of the whole log does not fit in memory), in two parts:
//!
//! - A filter naming a shipment, a tracking number, a partner or a shipper selects through the
//!   GDPR projection's indexes (docs/adr/0006) what it has applied: a page of the decisions'
//!   rows → the events of those decisions' streams (each decision and the cancellation of its
//!   delivery, SPEC §14) and the shipment's own stream → [`AccessFilter`]. The export costs
//!   O(the events it holds), not O(the log).
//! - A time window (`from`/`to` and no key) reads, of what the projection has applied, only the
//!   span of the log where its time index finds the window's decisions, and the positions of
//!   the deliveries' cancellations in the window (SPEC §14: filtered by their own time, which
//!   the projection keeps no row of) from the log's index of them: O(the span), not O(the log).
//! - The log the projection has not applied yet (all of it for any other filter), one page of
//!   2^14 positions at a time (the next pages are read meanwhile) → [`AccessFilter`].
//!
//! Then leaf data → [`Store::inclusion_proofs`] (neighbours share their paths) →
//! [`write_line`] → one chunk of the HTTP body or the file, in log order.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use consent_ledger_audit::bundle::{write_line, BundleConsistency, BundleHeader, BUNDLE_FORMAT};
use consent_ledger_audit::leaf::leaf_data;
use consent_ledger_audit::tree::leaf_hash;
use consent_ledger_domain::access::ACCESS_STREAM;
use consent_ledger_projections::ReadModel;
use consent_ledger_store::gdpr::{AccessFilter as RowsFilter, GdprAccess};
use consent_ledger_store::{DecisionScan, Inclusion, StoredEvent, TextFieldRange};
use tokio::task::JoinHandle;

use crate::error::AppError;
use crate::gdpr::filter::{access_event, access_time, decision, AccessFilter, Outcome, Resolved};
use crate::state::AppState;

/// Positions read per page: one block of [`Store::inclusion_proofs`], so that a page's proofs
/// share one block read.
const PAGE: u32 = 1 << 14;

/// Pages read ahead of the one being written.
const READ_AHEAD: usize = 3;

/// Decisions' rows asked of the GDPR projection per page of an indexed export.
const INDEX_PAGE: u32 = 4_096;

/// The part of an export selected through the GDPR projection's indexes: the log before
/// `covered`, which the projection had applied when the export started.
struct Indexed {
    rows: RowsFilter,
    covered: u64,
    /// The last decision row read.
    after: Option<u64>,
    /// Events read but not written yet: a delivery's cancellation comes after decisions of
    /// later pages, and the shipment's own events wherever they fall. Written once every
    /// decision before them is.
    held: BTreeMap<u64, StoredEvent>,
}

/// A page ahead: its lines written (in a buffer of the exporter's), and how many events they
/// hold.
type PageLines = JoinHandle<Result<(Vec<u8>, u64), AppError>>;

/// What decides which events a bundle holds, and writes their lines: shared with the tasks
/// that read, select and prove the pages ahead, so that the pages' hashing, proofs and lines
/// are made on every core, not on the one task that hands the chunks out.
struct Lines {
    state: Arc<AppState>,
    filter: AccessFilter,
    resolved: Resolved,
    /// The shipment whose registration the bundle holds besides its decisions: the one the
    /// filter names, unless it also names a partner (whose bundle is about its reads only).
    registration: Option<String>,
    /// A partner's own bundle: its decisions that did not hide the parcel from it (SPEC §2:
    /// a leaf keeps the true reason of a denial, which would tell another tenant's parcel
    /// from none).
    disclosed_only: bool,
    /// The filter selects by time and outcome alone ([`AccessFilter::selects_at`]).
    on_time_alone: bool,
    /// The size of the tree the bundle's checkpoint commits to.
    size: u64,
}

/// Writes one bundle, chunk by chunk: [`Exporter::start`], then [`Exporter::next_chunk`] until
/// it answers `None`.
pub struct Exporter {
    lines: Arc<Lines>,
    /// What SQL pre-selects, so that events the filter would drop are never read into Rust.
    scan: Arc<DecisionScan>,
    next: u64,
    header: Option<Vec<u8>>,
    /// The pages ahead, each with the position it ends at.
    reading: VecDeque<(PageLines, u64)>,
    /// Buffers the pages ahead write into, handed back by the chunks they became: a page's
    /// lines are tens of megabytes, which a fresh allocation would have the kernel zero page
    /// by page.
    spare: Vec<Vec<u8>>,
    /// The runs of positions still to be read by pages, in log order: the log after what
    /// the GDPR projection had applied, and before it the spans a time window selects there.
    spans: VecDeque<Range<u64>>,
    exported: u64,
    /// The indexed part, until it is written.
    indexed: Option<Indexed>,
}

impl Exporter {
    /// Signs a checkpoint of the log as it is now (the bundle's tree), and makes the header:
    /// with a consistency proof from `since` events if asked (`since` may not exceed the log).
    #[tracing::instrument(level = "debug", skip_all, fields(since = ?since))]
    pub async fn start(
        state: Arc<AppState>,
        filter: AccessFilter,
        since: Option<u64>,
    ) -> Result<Self, AppError> {
        Self::start_as(state, filter, since, false).await
    }

    /// [`Exporter::start`], leaving out the denials that hid the parcel if `disclosed_only`.
    async fn start_as(
        state: Arc<AppState>,
        filter: AccessFilter,
        since: Option<u64>,
        disclosed_only: bool,
    ) -> Result<Self, AppError> {
        let (size, note) = crate::checkpoint::sign_checkpoint(&state).await?;
        let consistency = match since {
            None => None,
            Some(from) if from > size => {
                return Err(AppError::invalid(
                    "since",
                    format!("must not exceed the log's size, {size} events"),
                ))
            }
            Some(from) => Some(BundleConsistency::new(
                from,
                &state.store.consistency_proof(from, size).await?,
            )),
        };
        let header = BundleHeader {
            format: BUNDLE_FORMAT.to_owned(),
            origin: state.log_key.name().to_owned(),
            vkey: state.log_key.vkey(),
            checkpoint: note,
            consistency,
        };
        let mut first = serde_json::to_vec(&header).map_err(AppError::internal)?;
        first.push(b'\n');
        // Owners and tracking numbers are looked up in the read model: bring it up to the
        // checkpoint, in case another process wrote.
        state.projector.catch_up().await?;
        let (resolved, registration) = {
            let model = state.projector.read();
            let resolved = filter.resolve(&model.access);
            let registration = filter
                .one_shipment(&resolved)
                .filter(|_| filter.partner.is_none())
                .filter(|s| {
                    filter
                        .shipper
                        .is_none_or(|h| model.access.shipment_owner(*s) == Some(h))
                });
            (resolved, registration.map(|s| s.to_string()))
        };
        let scan = Arc::new(pre_selection(&filter, &resolved, registration.as_deref()));
        let indexed = match index_filter(&filter) {
            Some(rows) => {
                let covered = state.store.gdpr_position().await?.get().min(size);
                let mut held = BTreeMap::new();
                if let Some(id) = &registration {
                    for event in state.store.read_stream("shipment", id).await? {
                        if event.position.get() < covered {
                            held.insert(event.position.get(), event);
                        }
                    }
                }
                Some(Indexed {
                    rows,
                    covered,
                    after: None,
                    held,
                })
            }
            None => None,
        };
        let (next, spans) = match &indexed {
            Some(indexed) => (indexed.covered, one_span(indexed.covered..size)),
            None => {
                let spans = time_spans(&state, &filter, size).await?;
                (spans.front().map_or(size, |s| s.start), spans)
            }
        };
        let on_time_alone = !filter.rows_filter().keyed() && !disclosed_only;
        Ok(Self {
            lines: Arc::new(Lines {
                state,
                filter,
                resolved,
                registration,
                disclosed_only,
                on_time_alone,
                size,
            }),
            scan,
            next,
            header: Some(first),
            reading: VecDeque::new(),
            spare: Vec::new(),
            spans,
            exported: 0,
            indexed,
        })
    }

    /// The bundle a partner fetches of its own deliveries and reads (SPEC §14, proof of lawful
    /// receipt): `filter` names it, and its denials that hid the parcel are left out.
    pub async fn start_for_partner(
        state: Arc<AppState>,
        partner: consent_ledger_domain::values::PartnerId,
        mut filter: AccessFilter,
        since: Option<u64>,
    ) -> Result<Self, AppError> {
        if filter.partner.is_some_and(|p| p != partner) {
            return Err(AppError::not_found());
        }
        filter.partner = Some(partner);
        Self::start_as(state, filter, since, true).await
    }

    /// The size of the tree the bundle's checkpoint commits to.
    pub fn tree_size(&self) -> u64 {
        self.lines.size
    }

    /// Positions looked at so far.
    pub fn scanned(&self) -> u64 {
        self.next.min(self.lines.size)
    }

    /// Events written so far.
    pub fn exported(&self) -> u64 {
        self.exported
    }

    /// Reads the page of positions `range` on a task of its own, and selects, proves and
    /// writes its lines there.
    fn read(&mut self, range: Range<u64>) -> PageLines {
        let (lines, scan) = (self.lines.clone(), self.scan.clone());
        let mut out = self.spare.pop().unwrap_or_default();
        tokio::spawn(async move {
            let events = lines.state.store.read_decisions(range, &scan).await?;
            let selected = lines.select(&events);
            let written = lines.write(&selected, &mut out).await?;
            Ok((out, written))
        })
    }

    /// The next chunk of the bundle (whole lines; empty when a page held nothing selected), or
    /// `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, AppError> {
        let mut chunk = Vec::new();
        Ok(self.next_into(&mut chunk).await?.then_some(chunk))
    }

    /// Appends the next chunk to `out`; `false` after the last. A caller that writes chunks
    /// away reuses one buffer: a page's lines are tens of megabytes, which a fresh allocation
    /// would have the kernel zero page by page.
    pub async fn next_into(&mut self, chunk: &mut Vec<u8>) -> Result<bool, AppError> {
        if let Some(header) = self.header.take() {
            chunk.extend_from_slice(&header);
            return Ok(true);
        }
        if self.indexed.is_some() {
            let events = self.next_indexed().await?;
            let selected = self.lines.select(&events);
            self.exported += self.lines.write(&selected, chunk).await?;
            return Ok(true);
        }
        // The next pages are read, selected, hashed and proven (other connections, other
        // threads) while this one is handed out. Pages end where the blocks of
        // [`PAGE`] positions do, so that a page's proofs share one block read.
        while self.reading.len() < READ_AHEAD {
            let Some(span) = self.spans.front_mut() else {
                break;
            };
            if span.is_empty() {
                self.spans.pop_front();
                continue;
            }
            let block_end = (span.start / u64::from(PAGE) + 1).saturating_mul(u64::from(PAGE));
            let page = span.start..block_end.min(span.end);
            span.start = page.end;
            let end = page.end;
            let reading = self.read(page);
            self.reading.push_back((reading, end));
        }
        let Some((reading, end)) = self.reading.pop_front() else {
            self.next = self.lines.size;
            return Ok(false);
        };
        let (mut page, written) = reading.await.map_err(AppError::internal)??;
        self.next = end;
        self.exported += written;
        if chunk.is_empty() {
            std::mem::swap(chunk, &mut page);
        } else {
            chunk.extend_from_slice(&page);
        }
        page.clear();
        self.spare.push(page);
        Ok(true)
    }

    /// The next page of the indexed part, in log order: the events of a page of decisions
    /// and what is held back before the last of them; the rest of what is held once the
    /// projection has no more.
    async fn next_indexed(&mut self) -> Result<Vec<StoredEvent>, AppError> {
        let Some(indexed) = self.indexed.as_mut() else {
            return Ok(Vec::new());
        };
        let rows = self
            .lines
            .state
            .store
            .gdpr_access(&indexed.rows, indexed.after, INDEX_PAGE)
            .await?;
        let covered = indexed.covered;
        // The projection may have gone on since the export started: the log from `covered`
        // on is the scan's.
        let page: Vec<&GdprAccess> = rows.iter().filter(|r| r.position < covered).collect();
        let done = page.len() < rows.len() || page.is_empty();
        let store = &self.lines.state.store;
        let positions: Vec<u64> = page.iter().map(|r| r.position).collect();
        // Only a delivery can be cancelled (SPEC §14): its stream is read for the
        // cancellation recorded after it (the stream index holds no decision).
        let deliveries: Vec<String> = page
            .iter()
            .filter(|r| r.allowed && r.channel.as_deref() == Some("webhook"))
            .map(|r| r.decision_id.clone())
            .collect();
        let mut events = store.read_positions(&positions).await?;
        if !deliveries.is_empty() {
            events.extend(
                store
                    .read_streams(ACCESS_STREAM, &deliveries, covered)
                    .await?,
            );
        }
        for event in events {
            indexed.held.insert(event.position.get(), event);
        }
        // A selection this dense costs less scanned than looked up event by event (a partner's
        // share of a busy log): the scan takes the log after this page, and finds again what
        // is held after it.
        let switch = rows.len() == INDEX_PAGE as usize && dense(&page);
        let ready = match page.last().map(|r| r.position) {
            Some(last) if !done && !switch => {
                indexed.after = Some(last);
                let later = indexed.held.split_off(&(last + 1));
                std::mem::replace(&mut indexed.held, later)
            }
            last => {
                let mut held = std::mem::take(&mut indexed.held);
                self.indexed = None;
                if let Some(last) = last.filter(|_| !done) {
                    held.retain(|&position, _| position <= last);
                    self.next = last + 1;
                    self.spans = one_span(self.next..self.lines.size);
                }
                held
            }
        };
        Ok(ready.into_values().collect())
    }
}

impl Lines {
    /// Writes the lines of `selected` (in log order) to `chunk`, each with its proof; how many.
    async fn write(&self, selected: &[&StoredEvent], chunk: &mut Vec<u8>) -> Result<u64, AppError> {
        if selected.is_empty() {
            return Ok(0);
        }
        let positions: Vec<u64> = selected.iter().map(|e| e.position.get()).collect();
        let proofs = self
            .state
            .store
            .inclusion_proofs(&positions, self.size)
            .await?;
        chunk.reserve(selected.len() * 1600);
        for (event, proof) in selected.iter().zip(&proofs) {
            let data = leaf_of(event, proof)?;
            let leaf = std::str::from_utf8(&data).map_err(AppError::internal)?;
            // The bundle discloses the personal fields of what it holds, and says which
            // were erased (SPEC §12); pointers in order, as the line's object keeps them.
            let mut openings: Vec<(&str, &str, &str)> = event
                .openings
                .iter()
                .map(|o| (o.pointer.as_str(), o.value.as_str(), o.salt.as_str()))
                .collect();
            openings.sort_unstable();
            let erased = event.erased();
            write_line(
                chunk,
                event.position.get(),
                leaf,
                &proof.path,
                &openings,
                &erased,
            )
            .map_err(AppError::internal)?;
        }
        Ok(selected.len() as u64)
    }

    /// The page's events the bundle holds.
    fn select<'e>(&self, events: &'e [StoredEvent]) -> Vec<&'e StoredEvent> {
        let model = self.state.projector.read();
        events
            .iter()
            .take_while(|e| e.position.get() < self.size)
            .filter(|e| self.holds(e, &model))
            .collect()
    }

    fn holds(&self, e: &StoredEvent, model: &ReadModel) -> bool {
        if e.stream_type == "shipment" {
            return self.registration.as_ref() == Some(&e.stream_id);
        }
        if e.stream_type == ACCESS_STREAM && self.filter == AccessFilter::default() {
            // Every decision: no need to decode it.
            return true;
        }
        if self.on_time_alone {
            // A time window, an outcome: the payload's time alone is read.
            return access_time(e).is_some_and(|(at, outcome)| self.filter.selects_at(at, outcome));
        }
        access_event(e).is_some_and(|event| {
            let hidden = matches!(
                event,
                consent_ledger_domain::access::AccessEvent::TrackingAccessDenied { reason, .. }
                    if reason.hides_the_parcel()
            );
            !(self.disclosed_only && hidden)
                && self
                    .filter
                    .selects(&decision(&event), &self.resolved, &model.access)
        })
    }
}

/// The leaf data of `event`, checked against its stored leaf hash: an event altered after it
/// was hashed stops the export rather than yield a line that cannot verify.
fn leaf_of(event: &StoredEvent, proof: &Inclusion) -> Result<Vec<u8>, AppError> {
    let data = leaf_data(&event.leaf());
    if leaf_hash(&data) == proof.leaf {
        return Ok(data);
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "the event at position {} does not hash to its stored leaf: the log was altered; run \
         consent-ledger audit-log",
        event.position
    )))
}

/// Log positions per selected event below which a page of an indexed export is dense: reading
/// an event through the index costs about as much as scanning this many positions (measured at
/// 10M events: 31 µs a looked-up event, 1.8 µs a scanned position; BENCHMARKS.md).
const DENSE: u64 = 16;

/// Whether the rows (in log order) lie closer together than one in [`DENSE`] positions.
fn dense(rows: &[&GdprAccess]) -> bool {
    match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => {
            last.position - first.position < DENSE.saturating_mul(rows.len() as u64)
        }
        _ => false,
    }
}

/// Runs of positions to read: this one alone.
fn one_span(span: Range<u64>) -> VecDeque<Range<u64>> {
    std::iter::once(span).collect()
}

/// The runs of positions an export of `filter` (which names no key the GDPR projection's
/// indexes select by) reads, in log order: the whole log, or for a time window the span of
/// the log where the projection's time index finds its decisions, the positions of the
/// deliveries' cancellations in it (filtered by their own time, SPEC §14), and the log after
/// what the projection has applied. A window's export costs O(its span), not O(the log).
async fn time_spans(
    state: &AppState,
    filter: &AccessFilter,
    size: u64,
) -> Result<VecDeque<Range<u64>>, AppError> {
    if filter.from.is_none() && filter.to.is_none() {
        return Ok(one_span(0..size));
    }
    let covered = state.store.gdpr_position().await?.get().min(size);
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    // The projection keeps microseconds: `decided_at < to` holds of every decision whose
    // microsecond is at most `to`'s; the exact filter decides within it.
    let to_micros = filter.to.map(|t| micros(t).saturating_add(1));
    let decisions = state
        .store
        .gdpr_time_span(filter.from.map(micros), to_micros, covered)
        .await?;
    let second =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format(SECONDS).to_string());
    let cancellations = state
        .store
        .cancellations(
            second(filter.from).as_deref(),
            second(filter.to).as_deref(),
            covered,
        )
        .await?;
    let mut runs: Vec<Range<u64>> = decisions
        .map(|(first, last)| first..last + 1)
        .into_iter()
        .chain(cancellations.into_iter().map(|p| p..p + 1))
        .chain(std::iter::once(covered..size))
        .filter(|r| !r.is_empty())
        .collect();
    runs.sort_unstable_by_key(|r| r.start);
    let mut spans: VecDeque<Range<u64>> = VecDeque::with_capacity(runs.len());
    for run in runs {
        match spans.back_mut() {
            Some(last) if run.start <= last.end => last.end = last.end.max(run.end),
            _ => spans.push_back(run),
        }
    }
    Ok(spans)
}

/// What the GDPR projection is asked for a filter that names a shipment, a tracking number, a
/// partner or a shipper (`None` for any other: it scans the log). Its keys only: a delivery's
/// cancellation is recorded after its decision, with its own time and outcome, so the exact
/// filter decides on time and outcome; an event before `to` is of a decision before `to`.
fn index_filter(filter: &AccessFilter) -> Option<RowsFilter> {
    let keyed = filter.shipment.is_some()
        || filter.tracking.is_some()
        || filter.partner.is_some()
        || filter.shipper.is_some();
    keyed.then(|| RowsFilter {
        from: None,
        allowed: None,
        ..filter.rows_filter()
    })
}

/// The pre-selection in SQL for `filter`: decisions whose payload names the shipment, the
/// tracking number and the partner asked for, of the outcome asked for, and the registration
/// of the one shipment the bundle holds. Owners and times are not in the text; the exact filter
/// runs on what comes back.
pub(crate) fn pre_selection(
    filter: &AccessFilter,
    resolved: &Resolved,
    registration: Option<&str>,
) -> DecisionScan {
    let mut payload_contains = Vec::new();
    if let Some(shipment) = filter.shipment {
        payload_contains.push(vec![shipment.to_string()]);
    }
    if let Some((_, tracking)) = &filter.tracking {
        // Decisions about the registered shipment name its id; denials asked by tracking
        // number before it was registered name the number.
        let mut any = vec![tracking.to_string()];
        any.extend(resolved.tracked.map(|s| s.to_string()));
        // Since SPEC §12 a number asked for is sealed: every sealed denial passes here, and
        // the exact filter compares its opened number.
        any.push(r#"{"commitment":""#.to_owned());
        payload_contains.push(any);
    }
    if let Some(partner) = filter.partner {
        payload_contains.push(vec![partner.to_string()]);
    }
    if let Some(ids) = &filter.shipment_in {
        payload_contains.push(ids.iter().map(ToString::to_string).collect());
    }
    DecisionScan {
        stream_type: ACCESS_STREAM.to_owned(),
        // A cancelled delivery is filtered as a denial (SPEC §14): denials are two event
        // types, which the exact filter tells.
        event_type: (filter.outcome == Some(Outcome::Allowed))
            .then(|| "TrackingAccessAllowed".to_owned()),
        payload_contains,
        // A decision's time is stored as RFC 3339 in UTC; to the second it orders as text, so
        // from ≤ t < to needs the seconds of t between those of from and to.
        text_field: (filter.from.is_some() || filter.to.is_some()).then(|| TextFieldRange {
            key: "decided_at".to_owned(),
            chars: SECOND_CHARS,
            min: filter.from.map(|t| t.format(SECONDS).to_string()),
            max: filter.to.map(|t| t.format(SECONDS).to_string()),
        }),
        also: registration.map(|id| ("shipment".to_owned(), id.to_owned())),
        also_types: Vec::new(),
    }
}

/// RFC 3339 cut to the second, and the length of what it writes (years 0–9999).
const SECONDS: &str = "%Y-%m-%dT%H:%M:%S";
const SECOND_CHARS: usize = 19;

/// Writes the whole bundle to `out`; `progress` is told (positions scanned, tree size) after
/// each page. Returns (events written, tree size).
pub async fn write_bundle(
    mut exporter: Exporter,
    out: &mut impl Write,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<(u64, u64)> {
    let mut chunk = Vec::new();
    while exporter.next_into(&mut chunk).await.map_err(export_error)? {
        out.write_all(&chunk)?;
        chunk.clear();
        progress(exporter.scanned(), exporter.tree_size());
    }
    out.flush()?;
    Ok((exporter.exported(), exporter.tree_size()))
}

fn export_error(e: AppError) -> anyhow::Error {
    match e {
        AppError::Internal(cause) | AppError::Unavailable(cause) => cause.context("exporting"),
        other => anyhow::anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_stored_decision_time_starts_with_its_second() {
        // The pre-selection compares the first 19 characters of `decided_at` as the payload
        // stores it with the filter's times written with SECONDS.
        for t in [
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(1),
            Utc.with_ymd_and_hms(999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(5),
        ] {
            let stored = serde_json::to_value(t).unwrap();
            let stored = stored.as_str().unwrap();
            let second = t.format(SECONDS).to_string();
            assert_eq!(second.len(), SECOND_CHARS);
            assert_eq!(&stored[..SECOND_CHARS], second, "{stored}");
        }
    }
}
