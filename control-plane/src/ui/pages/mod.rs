//! The pages: one module per view, sharing the layout and small widgets.
//! Each view renders its `main` section alone too (`fragment`), which the
//! live script swaps in when the store changes.

pub mod autoscaling;
pub mod cluster;
pub mod events;
pub mod pod;
pub mod services;
pub mod workloads;

use maud::{DOCTYPE, Markup, html};

use super::view::Usage;

/// The views in the navigation bar: path segment and title.
pub const VIEWS: [(&str, &str); 5] = [
    ("cluster", "Cluster"),
    ("workloads", "Workloads"),
    ("services", "Services"),
    ("autoscaling", "Autoscaling"),
    ("events", "Events"),
];

/// Rows per page in long tables (5,000 nodes or 50,000 pods stay fast).
pub const PER_PAGE: usize = 100;

/// A whole page around `main`; `live` lists the kinds whose changes refresh it.
pub fn layout(title: &str, active: &str, live: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Drover" }
                link rel="stylesheet" href="/ui/assets/style.css";
                script src="/ui/assets/app.js" defer {}
            }
            body data-live=(live) {
                header {
                    a.brand href="/ui/cluster" { "Drover" }
                    nav {
                        @for (path, name) in VIEWS {
                            a href={ "/ui/" (path) } class=[(path == active).then_some("active")] { (name) }
                        }
                    }
                    span #live-state title="live updates" { "●" }
                }
                main #main { (main) }
            }
        }
    }
}

/// A horizontal allocation bar with its numbers.
pub fn bar(u: Usage, label: &str) -> Markup {
    let pct = u.percent();
    let level = match pct {
        0..=69 => "ok",
        70..=89 => "warn",
        _ => "full",
    };
    html! {
        div.bar title={ (label) ": " (pct) "%" } {
            div class={ "fill " (level) } style={ "width:" (pct) "%" } {}
            span { (label) }
        }
    }
}

/// Page links for a paginated table; `base` is the path with its filters.
pub fn pager(base: &str, page: usize, pages: usize, total: usize) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if pages > 1 {
            div.pager {
                @if page > 0 { a href={ (base) (sep) "page=" (page - 1) } { "← previous" } }
                span { "page " (page + 1) " of " (pages) " (" (total) " rows)" }
                @if page + 1 < pages { a href={ (base) (sep) "page=" (page + 1) } { "next →" } }
            }
        }
    }
}

/// A flash message after an action, or an error.
pub fn notice(message: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { p.notice { (m) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
    }
}

/// A confirmed POST button: the script asks `confirm` first.
pub fn action(action: &str, fields: &[(&str, &str)], label: &str, confirm: &str) -> Markup {
    html! {
        form.action method="post" action={ "/ui/actions/" (action) } data-confirm=(confirm) {
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button type="submit" { (label) }
        }
    }
}

/// The error page body (unknown view or object, bad request).
pub fn error_body(title: &str, detail: &str) -> Markup {
    html! {
        section.error-page {
            h1 { (title) }
            p.error role="alert" { (detail) }
            p { a href="/ui/cluster" { "Back to the cluster" } }
        }
    }
}
