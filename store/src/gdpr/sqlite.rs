//! The GDPR projection's tables in their own SQLite file (`ledger.audit.db`): the shared
//! statements of [`super`], and what SQLite alone needs.
//!
//! SQLite's planner has no statistics here (no ANALYZE) and takes any equality index that
//! also gives position order: for a shipper's own parcel it would walk the shipper's index,
//! every decision about every parcel of theirs. A unary `+` keeps a column's index out.
//!
//! An apply transaction is all or nothing (any error drops it), so its INSERTs need no
//! atomicity of their own: `OR FAIL` spares SQLite the statement journal it otherwise keeps
//! for a multi-row INSERT (or one whose trigger writes the clustered copy) inside a
//! transaction, a copy of every page the statement changes (see `crate::sqlite`'s writer).
gdpr_backend!(
    sqlx::Sqlite,
    "+",
    "audit_access_by_shipment",
    None,
    "INSERT OR FAIL INTO"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::explain;

    /// How SQLite would read `filter`'s page, from EXPLAIN QUERY PLAN.
    async fn plan(pool: &Pool, filter: &AccessFilter) -> String {
        explain(
            pool,
            access_page_query("EXPLAIN QUERY PLAN ", filter, None, 100),
        )
        .await
        .join("; ")
    }

    fn access(position: u64, shipment: Option<&str>) -> GdprAccess {
        GdprAccess {
            position,
            decided_at: 1_700_000_000_000_000 + i64::try_from(position).expect("small"),
            allowed: shipment.is_some(),
            reason: shipment.is_none().then(|| "unknown_shipment".to_owned()),
            partner_id: "P".into(),
            on_behalf_of: None,
            shipment_id: shipment.map(str::to_owned),
            shipper_id: shipment.map(|_| "me".to_owned()),
            carrier: Some("DHL".into()),
            tracking_number: Some("JJD1".into()),
            purpose: "insurance_claim".into(),
            requested: "status_events".into(),
            granted: "status_events".into(),
            consent_ids: String::new(),
            decision_id: format!("D{position}"),
            channel: None,
            authorization_ids: String::new(),
            dpa_id: None,
        }
    }

    /// An audit file projected before the clustered copy existed (only `0001` applied):
    /// the migration that adds it copies every row about a shipment, and the rows written
    /// after it reach the copy through the trigger; the views read both.
    #[tokio::test]
    async fn the_clustered_copy_takes_the_rows_projected_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ledger.audit.db");
        let first = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../migrations/sqlite-audit/0001_audit.sql"
            ),
            first.path().join("0001_audit.sql"),
        )
        .expect("copy 0001");
        let old = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .expect("open");
        sqlx::migrate::Migrator::new(first.path())
            .await
            .expect("migrator")
            .run(&old)
            .await
            .expect("0001");
        // What a projector of that schema wrote (no channel column yet).
        for a in [
            access(10, Some("S")),
            access(11, None),
            access(12, Some("T")),
        ] {
            sqlx::query(
                "INSERT INTO audit_access (position, decided_at, allowed, reason, \
                 partner_id, on_behalf_of, shipment_id, shipper_id, carrier, \
                 tracking_number, purpose, requested, granted, consent_ids, decision_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(u64_bind(a.position))
            .bind(a.decided_at)
            .bind(i64::from(a.allowed))
            .bind(a.reason)
            .bind(a.partner_id)
            .bind(a.on_behalf_of)
            .bind(a.shipment_id)
            .bind(a.shipper_id)
            .bind(a.carrier)
            .bind(a.tracking_number)
            .bind(a.purpose)
            .bind(a.requested)
            .bind(a.granted)
            .bind(a.consent_ids)
            .bind(a.decision_id)
            .execute(&old)
            .await
            .expect("an old row");
        }
        sqlx::query("UPDATE audit_projection SET position = 13 WHERE name = 'audit'")
            .execute(&old)
            .await
            .expect("position");
        old.close().await;

        let pool = crate::sqlite::open_gdpr(&path)
            .await
            .expect("migrate")
            .reads;
        let after = GdprBatch {
            shipments: Vec::new(),
            accesses: vec![access(13, Some("S")), access(14, Some("T"))],
            erased: Vec::new(),
            erased_positions: Vec::new(),
            asked_before: None,
        };
        assert!(
            gdpr_apply(&pool, Position::new(13), Position::new(15), &after)
                .await
                .expect("apply")
        );
        let history = |shipment: &str| AccessFilter {
            shipment_id: Some(shipment.to_owned()),
            ..AccessFilter::default()
        };
        for (shipment, expected) in [("S", vec![10, 13]), ("T", vec![12, 14])] {
            let rows = gdpr_access(&pool, &history(shipment), None, 100)
                .await
                .expect("history");
            assert_eq!(
                rows.iter().map(|r| r.position).collect::<Vec<_>>(),
                expected
            );
            assert_eq!(rows.first(), Some(&access(expected[0], Some(shipment))));
        }
        let copied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_access_by_shipment")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(
            copied, 4,
            "the decision about no shipment stays out of the copy"
        );
        // A rebuild empties both.
        gdpr_reset(&pool).await.expect("reset");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_access_by_shipment")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn the_most_selective_filter_drives_the_query() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = crate::sqlite::open_gdpr(&dir.path().join("ledger.audit.db"))
            .await
            .expect("open the audit file")
            .reads;
        let s = |v: &str| Some(v.to_owned());
        let cases = [
            // A tenant's view of one parcel: never the tenant's whole index.
            (
                AccessFilter {
                    shipment_id: s("S"),
                    shipper_id: s("me"),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access_by_shipment USING PRIMARY KEY (shipment_id=?",
            ),
            (
                AccessFilter {
                    shipment_in: Some(vec!["S".into(), "T".into()]),
                    partner_id: s("me"),
                    from: Some(0),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access_by_shipment USING PRIMARY KEY (shipment_id=?",
            ),
            (
                AccessFilter {
                    carrier_tracking: Some(("DHL".into(), "JJD1".into())),
                    shipper_id: s("me"),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access USING INDEX audit_access_tracking ",
            ),
            (
                AccessFilter {
                    partner_id: s("p"),
                    shipper_id: s("me"),
                    to: Some(1),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access USING INDEX audit_access_partner ",
            ),
            (
                AccessFilter {
                    shipper_id: s("me"),
                    from: Some(0),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access USING INDEX audit_access_shipper ",
            ),
            (
                AccessFilter {
                    from: Some(0),
                    to: Some(1),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access USING INDEX audit_access_time ",
            ),
            // Within a window's span, the rows of the span in log order.
            (
                AccessFilter {
                    from: Some(0),
                    to: Some(1),
                    within: Some((10, 20)),
                    ..AccessFilter::default()
                },
                "SEARCH audit_access USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
            ),
        ];
        for (filter, driven_by) in cases {
            let plan = plan(&pool, &filter).await;
            assert!(plan.contains(driven_by), "{filter:?}: {plan}");
        }
        // A time window's span of the log: one range of the time index, never the table.
        for (from, to) in [(Some(0), Some(1)), (Some(0), None), (None, Some(1))] {
            let plan = explain(&pool, time_span_query("EXPLAIN QUERY PLAN ", from, to, 100)).await;
            assert_eq!(
                plan,
                ["SEARCH audit_access USING COVERING INDEX audit_access_time (decided_at>? AND decided_at<?)"],
                "{from:?}..{to:?}"
            );
        }
        // A DSAR's parcels come from the look-up index alone, never the table's pages.
        for (key, index) in [
            (
                SubjectKey::RecipientRef("crm:1".into()),
                "audit_shipment_recipient",
            ),
            (
                SubjectKey::Tracking {
                    carrier: "DHL".into(),
                    tracking_number: "JJD1".into(),
                },
                "audit_shipment_tracking",
            ),
        ] {
            let plan = explain(&pool, shipments_query("EXPLAIN QUERY PLAN ", &key)).await;
            assert!(
                plan.iter()
                    .any(|p| p.contains(&format!("USING COVERING INDEX {index} "))),
                "{key:?}: {plan:?}"
            );
        }
    }
}
