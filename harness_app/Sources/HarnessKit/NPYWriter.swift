import CoreML
import Foundation

/// Writes an MLMultiArray as a NumPy .npy file (format version 1.0), readable by `np.load(allow_pickle=False)`.
///
/// Layout: magic `\x93NUMPY`, version 1.0, a little-endian UInt16 header length, then a Python-dict header
/// padded with spaces and ending in a newline so the data starts at a multiple of 64 bytes, then the
/// scalars in C order. MLShapedArray reads the multiarray through its strides, so padded Neural Engine
/// outputs come out dense.
public enum NPYWriter {
    public static func header(descr: String, shape: [Int]) -> Data {
        let dims = shape.map(String.init)
        let shapeText = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1  // magic 6 + version 2 + length 2, dict, newline
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = UInt16(dict.utf8.count)
        var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0])
        data += Data([UInt8(length & 0xFF), UInt8(length >> 8)])
        return data + Data(dict.utf8)
    }

    public static func data(for array: MLMultiArray) throws -> Data {
        let shape = array.shape.map(\.intValue)
        switch array.dataType {
        case .float32:
            return encode(MLShapedArray<Float>(array).scalars, descr: "<f4", shape: shape)
        case .float16:
            return encode(MLShapedArray<Float16>(array).scalars, descr: "<f2", shape: shape)
        case .int32:
            return encode(MLShapedArray<Int32>(array).scalars, descr: "<i4", shape: shape)
        case .double:
            return encode(MLShapedArray<Double>(array).scalars, descr: "<f8", shape: shape)
        @unknown default:
            throw HarnessError.unsupportedOutput("data type \(array.dataType.rawValue)")
        }
    }

    public static func write(_ array: MLMultiArray, to url: URL) throws {
        try data(for: array).write(to: url, options: .atomic)
    }

    // Apple platforms are little-endian, so the in-memory bytes are already '<'.
    private static func encode<T>(_ scalars: [T], descr: String, shape: [Int]) -> Data {
        header(descr: descr, shape: shape) + scalars.withUnsafeBytes { Data($0) }
    }
}
