#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import ProximaSimulator

/// Attributes of every `<tag ...>` element in document order.
private func elements(_ tag: String, in svg: String) throws -> [[String: String]] {
    let element = try Regex("<\(tag) ([^>]*)>")
    let attribute = try Regex(#"([a-z0-9-]+)="([^"]*)""#)
    return svg.matches(of: element).map { match in
        let body = match.output[1].substring ?? ""
        var attributes: [String: String] = [:]
        for pair in body.matches(of: attribute) {
            attributes[String(pair.output[1].substring ?? "")] = String(pair.output[2].substring ?? "")
        }
        return attributes
    }
}

/// Contents of every `<text class="CLASS" ...>` element.
private func texts(_ cssClass: String, in svg: String) throws -> [String] {
    try svg.matches(of: Regex("<text class=\"\(cssClass)\"[^>]*>([^<]*)</text>")).map { String($0.output[1].substring ?? "") }
}

private func number(_ attributes: [String: String], _ name: String) -> Double {
    Double(attributes[name] ?? "") ?? .nan
}

private func series(_ name: String, _ coordinates: [(Double, Double)]) -> SVGChart.Series {
    SVGChart.Series(name: name, points: coordinates.map { SVGChart.Point(x: $0.0, y: $0.1) })
}

@Suite struct SVGChartTests {
    @Test func twoSeriesLineChartHasOnePolylinePerSeriesAndBothLegendNames() throws {
        let chart = SVGChart(
            title: "Latency", xLabel: "load (req/s)", yLabel: "ms",
            series: [series("p50 latency", [(1, 10), (2, 12), (3, 15)]), series("p99 latency", [(1, 30), (2, 45), (3, 90)])])
        let svg = chart.render()
        let polylines = try elements("polyline", in: svg)
        #expect(polylines.count == 2)
        #expect(polylines.map { $0["stroke"] } == [SVGChart.palette[0], SVGChart.palette[1]])
        #expect(polylines.allSatisfy { ($0["points"] ?? "").split(separator: " ").count == 3 })
        #expect(try texts("legend", in: svg) == ["p50 latency", "p99 latency"])
        #expect(try elements("circle", in: svg).count == 6)
        #expect(svg.components(separatedBy: "<g ").count == svg.components(separatedBy: "</g>").count)
    }

    @Test func extremePointsAreDrawnAtTheEdgesOfThePlotArea() throws {
        let xs: [Double] = [3, 10, 7, -2, 0.5]
        let ys: [Double] = [1, 4, 9, 2, 5]
        let chart = SVGChart(title: "t", xLabel: "x", yLabel: "y", style: .points, series: [series("s", Array(zip(xs, ys)))])
        let svg = chart.render(width: 800, height: 500)
        let plot = try #require(try elements("rect", in: svg).first { $0["class"] == "plot" })
        let (left, top) = (number(plot, "x"), number(plot, "y"))
        let (right, bottom) = (left + number(plot, "width"), top + number(plot, "height"))
        let circles = try elements("circle", in: svg)
        try #require(circles.count == xs.count)
        let cx = circles.map { number($0, "cx") }, cy = circles.map { number($0, "cy") }
        #expect(cx.allSatisfy { $0 >= left && $0 <= right } && cy.allSatisfy { $0 >= top && $0 <= bottom })
        #expect(cx.firstIndex(of: cx.max()!) == 1 && cx[1] > right - 0.1 * (right - left))
        #expect(cx.firstIndex(of: cx.min()!) == 3 && cx[3] < left + 0.1 * (right - left))
        #expect(cy.firstIndex(of: cy.min()!) == 2 && cy[2] < top + 0.1 * (bottom - top))
        // Horizontal order of the markers follows the order of the x values.
        #expect(xs.indices.sorted { xs[$0] < xs[$1] } == cx.indices.sorted { cx[$0] < cx[$1] })
    }

    @Test func pointLabelsAreDrawnBesideTheirPointAndInsideThePlot() throws {
        let points = [SVGChart.Point(x: 0, y: 0, label: "2xA10"), SVGChart.Point(x: 10, y: 5, label: "1xH100 (spot)")]
        let svg = SVGChart(title: "t", xLabel: "x", yLabel: "y", style: .points, series: [SVGChart.Series(name: "configs", points: points)]).render()
        #expect(try elements("polyline", in: svg).isEmpty)
        #expect(try texts("point", in: svg) == ["2xA10", "1xH100 (spot)"])
        let circles = try elements("circle", in: svg), labels = try elements("text", in: svg).filter { $0["class"] == "point" }
        #expect(number(labels[0], "x") > number(circles[0], "cx") && labels[0]["text-anchor"] == nil)
        #expect(number(labels[1], "x") < number(circles[1], "cx") && labels[1]["text-anchor"] == "end")
    }

    @Test func logAxisSkipsNonPositiveValuesAndUsesOneTwoFiveTicks() throws {
        let chart = SVGChart(
            title: "t", xLabel: "x", yLabel: "y", yScale: .logarithmic, style: .points,
            series: [series("s", [(1, 0), (2, -5), (3, 1), (4, 30), (5, 500), (6, .nan), (.infinity, 7)])])
        let svg = chart.render()
        #expect(try elements("circle", in: svg).count == 3)
        #expect(try texts("ytick", in: svg) == ["1", "2", "5", "10", "20", "50", "100", "200", "500"])
        // Decades are evenly spaced on a log axis.
        let tickY = try elements("text", in: svg).filter { $0["class"] == "ytick" }.map { number($0, "y") }
        #expect(abs((tickY[0] - tickY[3]) - (tickY[3] - tickY[6])) < 0.2)
        #expect(!svg.contains("nan") && !svg.contains("inf"))
    }

    @Test func wideLogAxisKeepsTicksOnPowersOfTenOnly() throws {
        let chart = SVGChart(
            title: "t", xLabel: "x", yLabel: "y", xScale: .logarithmic,
            series: [series("s", [(0.001, 1), (1e6, 2)])])
        let labels = try texts("xtick", in: chart.render())
        #expect(labels == ["0.001", "0.01", "0.1", "1", "10", "100", "1k", "10k", "100k", "1M"])
    }

    @Test func linearTicksAreNiceStepsWithCompactLabels() throws {
        let chart = SVGChart(title: "t", xLabel: "x", yLabel: "y", series: [series("s", [(0, 0), (2500, 1)])])
        let svg = chart.render()
        #expect(try texts("xtick", in: svg) == ["0", "500", "1k", "1.5k", "2k", "2.5k"])
        #expect(try texts("ytick", in: svg) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(SVGChart.tickLabel(0.25, step: 0.25) == "0.25")
        #expect(SVGChart.tickLabel(0.1 + 0.2, step: 0.1) == "0.3")
        #expect(SVGChart.tickLabel(1_000_000, step: 1_000_000) == "1M")
        #expect(SVGChart.tickLabel(12_500, step: 2_500) == "12.5k")
        #expect(SVGChart.tickLabel(-0.0, step: 0.5) == "0")
        #expect(SVGChart.tickLabel(-1_500, step: 500) == "-1.5k")
        for span in [1.0, 1.37, 2.9, 4.4, 7, 13, 33, 100, 825, 0.003] {
            for offset in [0, -0.37 * span, 15.2 * span] {
                let ticks = SVGChart.Axis.linearTicks(offset, offset + span)
                #expect((5...9).contains(ticks.count), "\(offset)+\(span): \(ticks.map(\.value))")
                #expect(ticks.allSatisfy { $0.value >= offset - 1e-9 * span && $0.value <= offset + span * (1 + 1e-9) })
                let mantissa = ticks[0].step / pow(10, log10(ticks[0].step).rounded(.down))
                #expect([1, 2, 2.5, 5].contains { abs($0 - mantissa) < 1e-9 })
            }
        }
    }

    @Test func textIsXMLEscaped() throws {
        let chart = SVGChart(
            title: #"a<b & "c" 'd'>"#, xLabel: "x<1", yLabel: "y&z", style: .points,
            series: [SVGChart.Series(name: "<script>", points: [SVGChart.Point(x: 1, y: 1, label: "p&q")])],
            referenceY: SVGChart.Reference(value: 1, label: "SLO < 2s"))
        let svg = chart.render()
        #expect(svg.contains("a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"))
        #expect(svg.contains("&lt;script&gt;") && !svg.contains("<script>"))
        #expect(svg.contains("p&amp;q") && svg.contains("x&lt;1") && svg.contains("y&amp;z") && svg.contains("SLO &lt; 2s"))
        // Every ampersand starts one of the entities we emit.
        let entities = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
        let pieces = svg.components(separatedBy: "&").dropFirst()
        #expect(!pieces.isEmpty && pieces.allSatisfy { piece in entities.contains { piece.hasPrefix($0.dropFirst()) } })
    }

    @Test func emptyChartIsAValidDocumentThatSaysNoData() throws {
        for chart in [
            SVGChart(title: "nothing", xLabel: "x", yLabel: "y"),
            SVGChart(title: "all skipped", xLabel: "x", yLabel: "y", yScale: .logarithmic, series: [series("s", [(1, 0), (.nan, 2)])]),
        ] {
            let svg = chart.render()
            #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
            #expect(svg.hasSuffix("</svg>\n"))
            #expect(try texts("nodata", in: svg) == ["no data"])
            #expect(try elements("rect", in: svg).contains { $0["class"] == "plot" })
            #expect(try texts("xtick", in: svg).count >= 2)
            #expect(try elements("circle", in: svg).isEmpty && !svg.contains("nan"))
        }
        let drawn = SVGChart(title: "t", xLabel: "x", yLabel: "y", series: [series("s", [(1, 1)])]).render()
        #expect(try texts("nodata", in: drawn).isEmpty)
    }

    @Test func referenceLineIsDrawnInsideThePlotWithItsLabel() throws {
        let chart = SVGChart(
            title: "t", xLabel: "x", yLabel: "y", series: [series("s", [(0, 10), (1, 100)])],
            referenceY: SVGChart.Reference(value: 400, label: "SLO 400 ms"))
        let svg = chart.render()
        let plot = try #require(try elements("rect", in: svg).first { $0["class"] == "plot" })
        let line = try #require(try elements("line", in: svg).first { $0["class"] == "reference" })
        let y = number(line, "y1")
        #expect(y >= number(plot, "y") && y < number(plot, "y") + 0.1 * number(plot, "height"))
        #expect(svg.contains(">SLO 400 ms</text>"))
    }

    @Test func paletteCyclesAfterEightSeries() throws {
        let many = (0..<9).map { series("s\($0)", [(Double($0), 1), (Double($0) + 1, 2)]) }
        let svg = SVGChart(title: "t", xLabel: "x", yLabel: "y", series: many).render()
        let strokes = try elements("polyline", in: svg).map { $0["stroke"] ?? "" }
        #expect(Set(strokes.prefix(8)).count == 8)
        #expect(strokes[8] == strokes[0])
    }

    @Test func renderIsDeterministicWithOneDecimalCoordinates() throws {
        func make() -> SVGChart {
            SVGChart(
                title: "t", xLabel: "x", yLabel: "y", xScale: .logarithmic, style: .lines,
                series: [series("a", [(1.0 / 3, 2.0 / 3), (7, 1e-3)]), series("b", [(100, 1e4)])])
        }
        let first = make().render(width: 640, height: 400)
        #expect(first == make().render(width: 640, height: 400))
        #expect(first != make().render(width: 641, height: 400))
        let coordinates = try elements("circle", in: first).flatMap { [$0["cx"] ?? "", $0["cy"] ?? ""] }
        #expect(coordinates.count == 6)
        #expect(coordinates.allSatisfy { value in
            let parts = value.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1].count == 1 && Double(value) != nil
        })
    }
}
