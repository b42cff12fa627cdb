//! `consent-ledger-bench console`: what the console's pages cost (SPEC §15), beside the API
//! answering the same rows and the harness's ceiling, in the same run on the same server.
//!
//! One run: the `decisions` fixture served on a loopback port (20 partners with consents, 2,000
//! parcels) and `--decisions` decisions recorded through it, so the access log holds them; a
//! privacy officer signs in through the console's form (its own CSRF token, then the session
//! cookie). Then, each for `--count` requests from `--connections` clients: `GET
//! /v1/audit/access?limit=500` (the API's JSON of a page of 500 decisions: the baseline), `GET
//! /console/access` (the same 500 decisions as a page, with their per-day plot), `GET
//! /console/` (a page with no query at all: the console's own overhead), and `GET /healthz`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use consent_ledger_domain::values::Role;

use crate::decisions::{healthz, load, load_as, single_decisions, Requests};
use crate::fixture::{fixture, register_principal};
use crate::{ms, Figures, Scratch};

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Requests per measured row.
    #[arg(long, default_value_t = 2_000)]
    pub count: usize,
    /// Decisions recorded before, for the access log to show.
    #[arg(long, default_value_t = 20_000)]
    pub decisions: usize,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Signs in through the console's form as `token`; the session cookie's value. On a thread
/// of its own with an actix system, as awc needs (the load generator does the same).
fn sign_in(url: &str, token: &str) -> anyhow::Result<String> {
    let (url, token) = (url.to_owned(), token.to_owned());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move { sign_in_here(&url, &token).await })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the sign-in thread panicked"))?
}

async fn sign_in_here(url: &str, token: &str) -> anyhow::Result<String> {
    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish();
    let cookie_of = |res: &awc::ClientResponse<_>, name: &str| {
        res.headers()
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let mut form = client
        .get(format!("{url}/console/sign-in"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = cookie_of(&form, "cl_sign_in").ok_or_else(|| anyhow::anyhow!("no form cookie"))?;
    let html = form.body().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let html = String::from_utf8_lossy(&html);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow::anyhow!("no CSRF field in the sign-in form"))?;
    let body = serde_urlencoded::to_string([("csrf", csrf), ("token", token)])?;
    let signed = client
        .post(format!("{url}/console/sign-in"))
        .insert_header(("Cookie", format!("cl_sign_in={pre}")))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    cookie_of(&signed, "cl_session").ok_or_else(|| anyhow::anyhow!("not signed in"))
}

/// GETs of `path` with `credential`.
fn gets(path: &'static str, credential: String) -> Requests {
    Arc::new(move |_| (path, credential.clone(), serde_json::Value::Null))
}

pub(crate) async fn console(args: ConsoleArgs, scratch: &Scratch) -> anyhow::Result<()> {
    eprintln!(
        "bench console: {} requests per row, {} connections, {} decisions in the log, {}, scratch in {}",
        args.count,
        args.connections,
        args.decisions,
        scratch.label(),
        scratch.path().display()
    );
    let ledger = scratch.part("ledger").await?;
    let f = fixture(&ledger.options, 20, 2_000).await?;
    let urls = vec![f.url.clone()];
    load(
        &urls,
        64,
        args.decisions,
        single_decisions(f.partner_tokens.clone(), f.shipments.clone()),
    )?;
    let officer = register_principal(&f.state, Role::PrivacyOfficer, "DPO", None).await?;
    let session = sign_in(&f.url, &officer.token)?;
    // One call first, so that the audit projection has caught up before anything is timed.
    load(
        &urls,
        1,
        1,
        gets("/v1/audit/access?limit=500", officer.token.clone()),
    )?;
    let as_cookie = |value: &str| ("Cookie", format!("cl_session={value}"));
    let api = load(
        &urls,
        args.connections,
        args.count,
        gets("/v1/audit/access?limit=500", officer.token.clone()),
    )?;
    let page = load_as(
        &urls,
        args.connections,
        args.count,
        gets("/console/access", session.clone()),
        as_cookie,
    )?;
    let home = load_as(
        &urls,
        args.connections,
        args.count,
        gets("/console/", session),
        as_cookie,
    )?;
    let ceiling = load(&urls, args.connections, args.count, healthz())?;
    println!(
        "| request ({} connections) | answers/s | p50 | p99 |",
        args.connections
    );
    println!("|---|---:|---:|---:|");
    let row = |what: &str, f: &Figures| {
        println!(
            "| {what} | {:.0} | {:.2} ms | {:.2} ms |",
            f.per_second,
            ms(f.p50),
            ms(f.p99)
        )
    };
    row(
        "`GET /v1/audit/access?limit=500` (JSON, the baseline)",
        &api,
    );
    row(
        "`GET /console/access` (500 decisions as a page, with the plot)",
        &page,
    );
    row("`GET /console/` (a signed-in page, no query)", &home);
    row("`GET /healthz` (the harness's ceiling)", &ceiling);
    println!(
        "page / API: {:.2} of the rate",
        page.per_second / api.per_second.max(1e-9)
    );
    Ok(())
}
