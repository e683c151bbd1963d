#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Distances and network round-trip times between places on Earth.
public enum Geography {
    /// Mean Earth radius in kilometres.
    public static let earthRadiusKilometres = 6371.0
    /// Light in fibre covers about 200 km per millisecond one way.
    public static let fibreKilometresPerMillisecond = 200.0

    /// Great-circle distance in kilometres (haversine).
    public static func distanceKilometres(_ a: Coordinates, _ b: Coordinates) -> Double {
        let radians = Double.pi / 180
        let latitudeA = a.latitude * radians
        let latitudeB = b.latitude * radians
        let deltaLatitude = (b.latitude - a.latitude) * radians
        let deltaLongitude = (b.longitude - a.longitude) * radians
        let sinLatitude = sin(deltaLatitude / 2)
        let sinLongitude = sin(deltaLongitude / 2)
        let h = sinLatitude * sinLatitude + cos(latitudeA) * cos(latitudeB) * sinLongitude * sinLongitude
        return 2 * earthRadiusKilometres * asin(min(1, h.squareRoot()))
    }
}

/// A place as a point on the unit sphere, so that the distance to many others costs one dot
/// product and one arccosine each.
public struct UnitVector: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var z: Double

    public init(_ place: Coordinates) {
        let latitude = place.latitude * .pi / 180
        let longitude = place.longitude * .pi / 180
        x = cos(latitude) * cos(longitude)
        y = cos(latitude) * sin(longitude)
        z = sin(latitude)
    }

    /// Great-circle distance in kilometres. Uses atan2 of the cross and dot products, accurate at
    /// every distance (plain arccos loses precision for nearby points).
    @inline(__always)
    public func distanceKilometres(to other: UnitVector) -> Double {
        let dot = x * other.x + y * other.y + z * other.z
        let cx = y * other.z - z * other.y
        let cy = z * other.x - x * other.z
        let cz = x * other.y - y * other.x
        return Geography.earthRadiusKilometres * atan2((cx * cx + cy * cy + cz * cz).squareRoot(), dot)
    }
}

/// How long a round trip between two places takes: the fibre bound for the great-circle distance,
/// inflated because real paths are longer than great circles and cross routers (measured median
/// about 2x, p10 1.5x, p90 3.4x), plus a fixed last-mile term.
public struct RoundTripModel: Sendable, Equatable {
    public var inflation: Double
    public var lastMileMilliseconds: Double

    public init(inflation: Double = 2.0, lastMileMilliseconds: Double = 2.0) {
        self.inflation = inflation
        self.lastMileMilliseconds = lastMileMilliseconds
    }

    /// Round-trip time in seconds.
    public func roundTripSeconds(from a: Coordinates, to b: Coordinates) -> Double {
        let fibreBoundMilliseconds = 2 * Geography.distanceKilometres(a, b) / Geography.fibreKilometresPerMillisecond
        return (fibreBoundMilliseconds * inflation + lastMileMilliseconds) / 1000
    }
}
