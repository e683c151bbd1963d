// swift-tools-version:6.1
import PackageDescription

// Microbenchmarks of the gateway's hot functions, kept in their own package so that the benchmark
// harness and its malloc interposer never become dependencies of the gateway itself.
// Run from this directory: swift package --disable-sandbox benchmark
let package = Package(
    name: "ProximaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(name: "proxima", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "GatewayHotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ProximaCore", package: "proxima"),
                .product(name: "ProximaBench", package: "proxima"),
                .product(name: "ProximaGateway", package: "proxima"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            path: "Benchmarks/GatewayHotPath",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
