#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A small line or scatter chart for the simulator's evidence report, rendered as a standalone SVG
/// document without dependencies. Output is deterministic: the same chart always gives the same bytes.
public struct SVGChart: Sendable {
    /// How values map onto an axis.
    public enum Scale: Sendable { case linear, logarithmic }

    /// `lines` joins each series' points (in the given order) with a polyline and marks each point;
    /// `points` draws a scatter of markers. In both styles a point's label, when set, is drawn next to it.
    public enum Style: Sendable { case lines, points }

    /// One data point; points with non-finite coordinates, or non-positive ones on a log axis, are skipped.
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double
        public var label: String?
        public init(x: Double, y: Double, label: String? = nil) {
            self.x = x
            self.y = y
            self.label = label
        }
    }

    /// A named series, drawn in the next palette colour and listed in the legend.
    public struct Series: Sendable, Equatable {
        public var name: String
        public var points: [Point]
        public init(name: String, points: [Point]) {
            self.name = name
            self.points = points
        }
    }

    /// A horizontal reference line, such as an SLO target, drawn dashed with its label.
    public struct Reference: Sendable, Equatable {
        public var value: Double
        public var label: String
        public init(value: Double, label: String) {
            self.value = value
            self.label = label
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: Scale
    public var yScale: Scale
    public var style: Style
    public var series: [Series]
    /// Optional horizontal reference line; it is included in the y range when drawable.
    public var referenceY: Reference?

    public init(
        title: String, xLabel: String, yLabel: String, xScale: Scale = .linear, yScale: Scale = .linear,
        style: Style = .lines, series: [Series] = [], referenceY: Reference? = nil
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xScale = xScale
        self.yScale = yScale
        self.style = style
        self.series = series
        self.referenceY = referenceY
    }

    /// Series colours, cycled in series order.
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// Renders the chart as a complete `<svg xmlns=...>` document of the given size in pixels.
    public func render(width: Int = 720, height: Int = 440) -> String {
        let (width, height) = (max(width, 240), max(height, 160))
        let (w, h) = (Double(width), Double(height))
        let nameChars = series.map(\.name.count).max() ?? 0
        let left = 72.0, top = 40.0, bottom = 52.0
        let right = series.isEmpty ? 24.0 : 44 + min(7 * Double(nameChars), w / 3)
        let (px0, px1, py0, py1) = (left, w - right, top, h - bottom)
        let drawable = series.map { $0.points.filter { Axis.accepts($0.x, xScale) && Axis.accepts($0.y, yScale) } }
        let reference = referenceY.flatMap { Axis.accepts($0.value, yScale) ? $0 : nil }
        let xAxis = Axis(values: drawable.flatMap { $0.map(\.x) }, scale: xScale)
        let yAxis = Axis(values: drawable.flatMap { $0.map(\.y) } + (reference.map { [$0.value] } ?? []), scale: yScale)
        func px(_ x: Double) -> Double { px0 + xAxis.fraction(x) * (px1 - px0) }
        func py(_ y: Double) -> Double { py1 - yAxis.fraction(y) * (py1 - py0) }
        let n = Self.number

        var out = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text class=\"title\" x=\"\(n(w / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(Self.escape(title))</text>",
        ]
        for (value, step) in xAxis.ticks {
            let x = n(px(value))
            out.append("<line x1=\"\(x)\" y1=\"\(n(py0))\" x2=\"\(x)\" y2=\"\(n(py1))\" stroke=\"#e6e6e6\"/>")
            out.append("<text class=\"xtick\" x=\"\(x)\" y=\"\(n(py1 + 16))\" text-anchor=\"middle\">\(Self.tickLabel(value, step: step))</text>")
        }
        for (value, step) in yAxis.ticks {
            let y = n(py(value))
            out.append("<line x1=\"\(n(px0))\" y1=\"\(y)\" x2=\"\(n(px1))\" y2=\"\(y)\" stroke=\"#e6e6e6\"/>")
            out.append("<text class=\"ytick\" x=\"\(n(px0 - 6))\" y=\"\(n(py(value) + 4))\" text-anchor=\"end\">\(Self.tickLabel(value, step: step))</text>")
        }
        out.append("<rect class=\"plot\" x=\"\(n(px0))\" y=\"\(n(py0))\" width=\"\(n(px1 - px0))\" height=\"\(n(py1 - py0))\" fill=\"none\" stroke=\"#333\"/>")
        out.append("<text class=\"xlabel\" x=\"\(n((px0 + px1) / 2))\" y=\"\(n(h - 12))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>")
        out.append("<text class=\"ylabel\" transform=\"translate(18,\(n((py0 + py1) / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>")
        if let reference {
            let y = n(py(reference.value))
            out.append("<line class=\"reference\" x1=\"\(n(px0))\" y1=\"\(y)\" x2=\"\(n(px1))\" y2=\"\(y)\" stroke=\"#555\" stroke-dasharray=\"6 4\"/>")
            out.append("<text x=\"\(n(px1 - 4))\" y=\"\(n(py(reference.value) - 4))\" text-anchor=\"end\" fill=\"#555\">\(Self.escape(reference.label))</text>")
        }
        for (index, points) in drawable.enumerated() {
            let color = Self.palette[index % Self.palette.count]
            out.append("<g class=\"series\" fill=\"\(color)\">")
            if style == .lines, points.count >= 2 {
                let coords = points.map { "\(n(px($0.x))),\(n(py($0.y)))" }.joined(separator: " ")
                out.append("<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coords)\"/>")
            }
            for point in points {
                let (cx, cy) = (px(point.x), py(point.y))
                out.append("<circle cx=\"\(n(cx))\" cy=\"\(n(cy))\" r=\"\(style == .lines ? 3 : 4)\"/>")
                if let label = point.label {
                    // Labels that would run past the plot's right edge go to the left of their point.
                    let flip = cx + 6 + 6.5 * Double(label.count) > px1
                    let anchor = flip ? "x=\"\(n(cx - 6))\" text-anchor=\"end\"" : "x=\"\(n(cx + 6))\""
                    out.append("<text class=\"point\" \(anchor) y=\"\(n(cy - 6))\" font-size=\"11\" fill=\"#222\">\(Self.escape(label))</text>")
                }
            }
            out.append("</g>")
        }
        for (index, entry) in series.enumerated() {
            let y = py0 + 4 + 18 * Double(index)
            out.append("<rect x=\"\(n(px1 + 16))\" y=\"\(n(y))\" width=\"12\" height=\"12\" fill=\"\(Self.palette[index % Self.palette.count])\"/>")
            out.append("<text class=\"legend\" x=\"\(n(px1 + 34))\" y=\"\(n(y + 10))\">\(Self.escape(entry.name))</text>")
        }
        if drawable.allSatisfy(\.isEmpty) {
            out.append("<text class=\"nodata\" x=\"\(n((px0 + px1) / 2))\" y=\"\(n((py0 + py1) / 2))\" text-anchor=\"middle\" fill=\"#888\">no data</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    /// One axis: its range (in log10 units on a log axis) and its ticks with the step used to label each.
    struct Axis {
        let scale: Scale
        let lo: Double, hi: Double
        let ticks: [(value: Double, step: Double)]

        static func accepts(_ v: Double, _ scale: Scale) -> Bool { v.isFinite && (scale == .linear || v > 0) }

        func fraction(_ v: Double) -> Double { ((scale == .logarithmic ? log10(v) : v) - lo) / (hi - lo) }

        init(values: [Double], scale: Scale) {
            self.scale = scale
            let t = scale == .logarithmic ? values.map { log10($0) } : values
            var lo = t.min() ?? 0, hi = t.max() ?? 1
            if lo == hi { let d = scale == .logarithmic ? 0.5 : (lo == 0 ? 1 : abs(lo) * 0.1); lo -= d; hi += d }
            let pad = (hi - lo) * 0.05
            let nonNegative = lo >= 0
            lo -= pad
            hi += pad
            if scale == .linear, nonNegative, lo < 0 { lo = 0 }
            if !(hi - lo).isFinite || hi <= lo { (lo, hi) = (0, 1) }
            (self.lo, self.hi) = (lo, hi)
            var ticks: [(value: Double, step: Double)] = []
            if scale == .logarithmic {
                let stride = Int((hi - lo) / 10) + 1
                let mantissas: [Double] = hi - lo > 4 ? [1] : [1, 2, 5]
                for k in Int(lo.rounded(.down))...Int(hi.rounded(.up)) where k % stride == 0 {
                    for m in mantissas {
                        let v = m * pow(10, Double(k)), e = log10(v)
                        if e >= lo - 1e-9, e <= hi + 1e-9 { ticks.append((v, v)) }
                    }
                }
                if ticks.count < 2 { ticks = Self.linearTicks(pow(10, lo), pow(10, hi)).filter { $0.value > 0 } }
            } else {
                ticks = Self.linearTicks(lo, hi)
            }
            self.ticks = ticks
        }

        /// Multiples of a 1, 2, 2.5 or 5 × 10^k step inside `lo...hi`: the step giving closest to 6
        /// ticks, preferring 5 to 8 of them (9 rather than 4 when no step fits), larger steps on ties.
        static func linearTicks(_ lo: Double, _ hi: Double) -> [(value: Double, step: Double)] {
            func ticks(_ step: Double) -> [(value: Double, step: Double)] {
                var ticks: [(value: Double, step: Double)] = []
                var k = (lo / step - 1e-9).rounded(.up)
                while k * step <= hi + step * 1e-9, ticks.count < 40 {
                    ticks.append((k * step, step))
                    k += 1
                }
                return ticks
            }
            func score(_ count: Int) -> Int { count < 5 ? 20 - count : count > 8 ? count + 2 : abs(count - 6) }
            let base = pow(10, log10((hi - lo) / 6).rounded(.down))
            var best: [(value: Double, step: Double)] = []
            for m in [20, 10, 5, 2.5, 2, 1, 0.5] {
                let candidate = ticks(m * base)
                if best.isEmpty || score(candidate.count) < score(best.count) { best = candidate }
            }
            return best
        }
    }

    /// A coordinate with one decimal.
    static func number(_ v: Double) -> String { fixed(v, decimals: 1) }

    /// `v` with exactly `decimals` decimals, without Foundation; never prints "-0".
    static func fixed(_ v: Double, decimals: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let r = (abs(v) * Double(scale)).rounded()
        guard v.isFinite, r < 9e15 else { return v.isFinite ? "\(v)" : "0" }
        let n = UInt64(r)
        var text = String(n / scale)
        if decimals > 0 {
            let fraction = String(n % scale)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return (v < 0 && n != 0 ? "-" : "") + text
    }

    /// A compact tick label (0.25, 1, 10, 1k, 2.5k, 1M) with just the decimals that `step` needs.
    static func tickLabel(_ v: Double, step: Double) -> String {
        let a = abs(v)
        let (divisor, suffix) = a >= 1e12 ? (1e12, "T") : a >= 1e9 ? (1e9, "G") : a >= 1e6 ? (1e6, "M") : a >= 1e3 ? (1e3, "k") : (1, "")
        let s = abs(step) / divisor
        var decimals = 0
        while decimals < 9 {
            let scaled = s * pow(10, Double(decimals))
            if abs(scaled - scaled.rounded()) < 1e-6 * max(1, scaled) { break }
            decimals += 1
        }
        var text = fixed(v / divisor, decimals: decimals)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return (text == "-0" ? "0" : text) + suffix
    }

    /// `text` with the five XML special characters escaped and control characters XML forbids dropped.
    static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for c in text.unicodeScalars {
            switch c {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&apos;".unicodeScalars)
            case "\t", "\n", "\r": out.append(c)
            default: if c.value >= 0x20, c.value != 0xFFFE, c.value != 0xFFFF { out.append(c) }
            }
        }
        return String(out)
    }
}
