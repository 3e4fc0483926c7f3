//! Autoscaling: each HPA's metrics against its targets and a replicas-over-
//! time chart drawn as SVG from the history the server keeps.

use maud::{Markup, PreEscaped, html};

use crate::ui::view::HpaRow;

/// An SVG polyline of (seconds ago, replicas) points over the last `window`
/// seconds, newest on the right.
pub fn chart(points: &[(f64, i32)], max: i32, window: f64) -> Markup {
    const W: f64 = 360.0;
    const H: f64 = 80.0;
    let top = max.max(1) as f64;
    let xy = |ago: f64, r: i32| {
        let x = W - (ago.clamp(0.0, window) / window) * W;
        let y = H - (r.max(0) as f64 / top) * (H - 4.0);
        format!("{x:.1},{y:.1}")
    };
    // A step line: each value holds until the next change.
    let mut path = Vec::new();
    for (i, (ago, r)) in points.iter().enumerate() {
        if i > 0 {
            path.push(xy(*ago, points[i - 1].1));
        }
        path.push(xy(*ago, *r));
    }
    if let Some((_, r)) = points.last() {
        path.push(xy(0.0, *r));
    }
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) role="img" aria-label="replicas over time" {
            line x1="0" y1=(H) x2=(W) y2=(H) class="axis" {}
            polyline points=(path.join(" ")) class="replicas" {}
            text x="2" y="10" class="label" { (PreEscaped(format!("max {max}"))) }
        }
    }
}

pub fn render(hpas: &[(HpaRow, Vec<(f64, i32)>)], window: f64) -> Markup {
    html! {
        h1 { "Autoscaling" }
        @if hpas.is_empty() { p { "No HorizontalPodAutoscalers." } }
        @for (h, points) in hpas {
            section.card.hpa data-hpa=(h.name) {
                h2 { (h.namespace) "/" (h.name) " → " (h.target) }
                p {
                    "replicas " strong.current { (h.current) } " (desired " (h.desired) ", min " (h.min) ", max " (h.max) ")"
                }
                ul.metrics { @for m in &h.metrics { li { (m) } } }
                (chart(points, h.max, window))
            }
        }
    }
}
