//! Services: virtual IP, ports, ready/total endpoints.

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
                        // Measured by the node proxies once they report it.
                        td { "–" }
                    }
                }
            }
        }
    }
}
