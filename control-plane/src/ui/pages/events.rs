//! Events, newest first, filterable by type and text.

use drover_proto::Time;
use drover_proto::types::Event;
use maud::{Markup, html};

use super::{PER_PAGE, pager};
use crate::ui::view::{age, paginate};

pub fn render(events: &[&Event], type_: &str, text: &str, page: usize, now: Time) -> Markup {
    let (rows, pages) = paginate(events, page, PER_PAGE);
    let base = format!(
        "/ui/events?type={}&q={}",
        urlencoding(type_),
        urlencoding(text)
    );
    html! {
        h1 { "Events" }
        form.filters method="get" action="/ui/events" {
            select name="type" aria-label="type" {
                @for t in ["", "Normal", "Warning"] {
                    option value=(t) selected[t == type_] { @if t.is_empty() { "all types" } @else { (t) } }
                }
            }
            input type="search" name="q" value=(text) placeholder="reason, object or message";
            button type="submit" { "Filter" }
        }
        table #events {
            thead { tr { th { "Last seen" } th { "Type" } th { "Reason" } th { "Object" } th { "Message" } th { "Count" } } }
            tbody {
                @for e in rows {
                    tr class=[(e.type_ == "Warning").then_some("warning")] {
                        td { (age(e.last_timestamp, now)) }
                        td { (e.type_) }
                        td { (e.reason) }
                        td { (e.involved_object.kind.to_lowercase()) "/" (e.involved_object.name) }
                        td { (e.message) }
                        td { (e.count) }
                    }
                }
            }
        }
        (pager(&base, page, pages, events.len()))
    }
}

/// Percent-encodes a query value (maud escapes HTML, not URLs).
pub fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
