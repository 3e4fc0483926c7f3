//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` + `chromium-driver`) against a real server with a
//! hollow-node cluster. Every view loads and shows what the API says; a
//! confirmed scale changes the Deployment and the page follows live; bad
//! input gets an error page. Screenshots go to the test's output folder.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{AgentProcess, Server, ok};
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Deployment, Node};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn browser() -> (Driver, Browser) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a browser session: {e}"),
        }
    }
}

async fn text(b: &Browser, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until the element's text satisfies `f` (the page updates live).
async fn wait_text(b: &Browser, css: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if f(&t) {
                return t;
            }
            last = t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {css} never matched; last seen: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(b: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// A raw form POST (what a crafted request would send, bypassing the page).
fn post_form(url: &str, path: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn every_view_matches_the_api_and_scaling_shows_live() {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        eprintln!(
            "skipped: needs Debian's chromium and chromium-driver (scripts/install-deps.sh installs them)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let _agent = AgentProcess::start(
        &server.url,
        &["--hollow", "--count", "12", "--heartbeat-seconds", "1"],
        "12 hollow nodes registered",
        Duration::from_secs(60),
    );
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web");
    ok(server.drover(&["apply", "-f", manifests.to_str().expect("path")]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let api = Client::connect(&server.url).await.expect("connect");
        let (driver, b) = browser().await;
        let ui = format!("{}/ui", server.url);

        // Cluster: node counts as the API lists them.
        let (nodes, _) = api
            .list_as::<Node>(&ListOptions::default())
            .await
            .expect("nodes");
        b.goto(&format!("{ui}/cluster")).await.expect("cluster");
        assert_eq!(text(&b, "#nodes-total").await, nodes.len().to_string());
        wait_text(&b, "#nodes-ready", "all nodes ready", |t| t == "12").await;
        let rows = b
            .find_all(Locator::Css("#node-table tbody tr"))
            .await
            .expect("rows");
        assert_eq!(rows.len(), 12);
        screenshot(&b, "cluster").await;

        // Workloads: the deployment's ready count is the API's, live.
        b.goto(&format!("{ui}/workloads")).await.expect("workloads");
        wait_text(&b, "tr[data-deployment=web] td.ready", "3 ready", |t| {
            t == "3/3"
        })
        .await;
        let d: Deployment = api.get_as("default", "web").await.expect("deployment");
        assert_eq!(d.status.map(|s| s.ready_replicas), Some(3));
        let pods = b
            .find_all(Locator::Css("#pods tbody tr"))
            .await
            .expect("pods");
        assert_eq!(pods.len(), 3);
        screenshot(&b, "workloads").await;

        // Scale to 5 through the page: confirm, then watch it converge
        // without reloading (a marker set on the page survives).
        let input = b
            .find(Locator::Css("tr[data-deployment=web] input[name=replicas]"))
            .await
            .expect("replicas input");
        input.clear().await.expect("clear");
        input.send_keys("5").await.expect("type");
        b.find(Locator::Css("tr[data-deployment=web] form.scale button"))
            .await
            .expect("scale button")
            .click()
            .await
            .expect("click");
        b.accept_alert()
            .await
            .expect("the scale asks for confirmation");
        wait_text(&b, "p.notice", "flash", |t| t.contains("scaled to 5")).await;
        b.execute("window.__kept = 42; return null;", vec![])
            .await
            .expect("marker");
        wait_text(
            &b,
            "tr[data-deployment=web] td.ready",
            "5 ready, live",
            |t| t == "5/5",
        )
        .await;
        let kept = b
            .execute("return window.__kept;", vec![])
            .await
            .expect("marker");
        assert_eq!(kept, json!(42), "the page updated without reloading");
        let d: Deployment = api.get_as("default", "web").await.expect("deployment");
        assert_eq!(d.spec.replicas, 5);

        // Services: ready endpoints are not tracked by hollow pods' IPs
        // alone; the row shows the API's service and its node port.
        b.goto(&format!("{ui}/services")).await.expect("services");
        let row = text(&b, "tr[data-service=web]").await;
        assert!(
            row.contains("10.96.") && row.contains("80:30080/TCP"),
            "{row}"
        );
        screenshot(&b, "services").await;

        b.goto(&format!("{ui}/autoscaling"))
            .await
            .expect("autoscaling");
        let hpa = text(&b, "section[data-hpa=web]").await;
        assert!(
            hpa.contains("Deployment/web") && hpa.contains("requests_per_second"),
            "{hpa}"
        );
        b.find(Locator::Css("section[data-hpa=web] svg.chart"))
            .await
            .expect("chart");
        screenshot(&b, "autoscaling").await;

        b.goto(&format!("{ui}/events")).await.expect("events");
        wait_text(&b, "#events", "controller events", |t| {
            t.contains("SuccessfulCreate")
        })
        .await;
        screenshot(&b, "events").await;
        b.goto(&format!("{ui}/events?type=Normal&q=scaled%20up"))
            .await
            .expect("filtered events");
        wait_text(&b, "#events tbody", "filtered events", |t| {
            t.contains("ScalingReplicaSet")
        })
        .await;
        for r in b
            .find_all(Locator::Css("#events tbody tr"))
            .await
            .expect("rows")
        {
            let t = r.text().await.unwrap_or_default();
            assert!(t.is_empty() || t.contains("ScalingReplicaSet"), "{t}");
        }

        // A pod page, from the workloads table.
        b.goto(&format!("{ui}/workloads")).await.expect("workloads");
        let link = b
            .find(Locator::Css("#pods tbody tr td a"))
            .await
            .expect("pod link");
        link.click().await.expect("open pod");
        wait_text(&b, "#pod-status", "pod status", |t| t == "Running").await;
        screenshot(&b, "pod").await;

        // Bad input: an unknown view and a bad page number show error pages.
        b.goto(&format!("{ui}/nope")).await.expect("unknown view");
        assert!(text(&b, "p.error").await.contains("not found"));
        b.goto(&format!("{ui}/workloads?page=x"))
            .await
            .expect("bad page");
        assert!(text(&b, "p.error").await.contains("page"));
        b.goto(&format!("{ui}/pods/default/missing"))
            .await
            .expect("missing pod");
        assert!(text(&b, "p.error").await.contains("not found"));
        screenshot(&b, "error").await;
        b.close().await.expect("close browser");
        drop(driver);
    });

    // A crafted bad scale value is refused with the field named; nothing changes.
    let (code, body) = post_form(
        &server.url,
        "/ui/actions/scale",
        "namespace=default&name=web&replicas=-3",
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("replicas"), "{body}");
    let (code, _) = post_form(
        &server.url,
        "/ui/actions/scale",
        "namespace=default&name=nope&replicas=1",
    );
    assert_eq!(code, 404);
    let (code, _) = post_form(&server.url, "/ui/actions/explode", "x=1");
    assert_eq!(code, 404);
}
