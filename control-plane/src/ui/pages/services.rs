//! Services: virtual IP, ports, ready/total endpoints, requests per second.

use maud::{Markup, html};

use crate::ui::view::ServiceRow;

pub fn render(services: &[ServiceRow]) -> Markup {
    html! {
        h1 { "Services" }
        table #services {
            thead { tr { th { "Namespace" } th { "Name" } th { "Type" } th { "Cluster IP" } th { "Ports" } th { "Endpoints" } th { "Requests/s" } } }
            tbody {
                @for s in services {
                    tr data-service=(s.name) {
                        td { (s.namespace) }
                        td { (s.name) }
                        td { (s.type_) }
                        td { (s.cluster_ip) }
                        td { (s.ports) }
                        td.endpoints class=[(s.ready == 0).then_some("none")] { (s.ready) "/" (s.total) " ready" }
                        // Summed over the nodes from the last metrics scrape.
                        td.rps { @match s.requests_per_second {
                            Some(r) => (format!("{r:.1}")),
                            None => "–",
                        } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_rates_show_once_measured() {
        let row = |name: &str, rps| ServiceRow {
            namespace: "default".into(),
            name: name.into(),
            type_: "ClusterIP".into(),
            cluster_ip: "10.96.0.10".into(),
            ports: "80/TCP".into(),
            ready: 1,
            total: 1,
            requests_per_second: rps,
        };
        let html = render(&[row("web", Some(12.34)), row("db", None)]).into_string();
        assert!(html.contains("<td class=\"rps\">12.3</td>"), "{html}");
        assert!(html.contains("<td class=\"rps\">–</td>"), "{html}");
    }
}
