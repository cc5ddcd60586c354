using System.Buffers.Binary;
using System.IO.Compression;
using SparseAttention.Layouts;

namespace SparseAttention.Visualization;

/// <summary>
/// Renders a layout as a PNG: heads side by side, one square per head with query rows going down and keys going right.
/// Disabled blocks are white, allowed elements dark blue and excluded elements of enabled blocks light orange; a pixel
/// that covers several tokens blends the two by the fraction allowed.
/// </summary>
public static class LayoutPicture
{
    private const int Gap = 12;
    private static readonly byte[] Background = [255, 255, 255];
    private static readonly byte[] Allowed = [31, 78, 160];
    private static readonly byte[] Excluded = [250, 214, 170];
    private static readonly byte[] GridLine = [225, 225, 225];

    /// <summary>Writes the picture to <paramref name="path"/>.</summary>
    /// <param name="layout">The layout to draw.</param>
    /// <param name="path">Destination .png file.</param>
    /// <param name="headSize">Pixels per head square; each pixel shows the element at its centre.</param>
    public static void SavePng(BlockLayout layout, string path, int headSize = 256)
    {
        using var file = File.Create(path);
        WritePng(layout, file, headSize);
    }

    /// <summary>Writes the PNG bytes to a stream.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="headSize"/> is not positive.</exception>
    public static void WritePng(BlockLayout layout, Stream destination, int headSize = 256)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(destination);
        Guard.Positive(headSize, nameof(headSize));
        var width = layout.Heads * headSize + (layout.Heads + 1) * Gap;
        var height = headSize + 2 * Gap;
        var rows = new byte[height * (1 + width * 3)];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                Pixel(layout, headSize, x, y).CopyTo(rows, y * (1 + width * 3) + 1 + x * 3);
            }
        }

        destination.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 2; // truecolour RGB
        WriteChunk(destination, "IHDR", header);
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            zlib.Write(rows);
        }

        WriteChunk(destination, "IDAT", compressed.ToArray());
        WriteChunk(destination, "IEND", []);
    }

    private static byte[] Pixel(BlockLayout layout, int headSize, int x, int y)
    {
        var head = (x - Gap) / (headSize + Gap);
        var localX = x - Gap - head * (headSize + Gap);
        var localY = y - Gap;
        if (x < Gap || head >= layout.Heads || localX >= headSize || localY < 0 || localY >= headSize)
        {
            return Background;
        }

        int queryFrom = localY * layout.Ctx / headSize, keyFrom = localX * layout.Ctx / headSize;
        int queryTo = Math.Max(queryFrom + 1, (localY + 1) * layout.Ctx / headSize), keyTo = Math.Max(keyFrom + 1, (localX + 1) * layout.Ctx / headSize);
        if (!layout.IsBlockEnabled(head, queryFrom / layout.BlockSize, keyFrom / layout.BlockSize))
        {
            // Faint block grid where blocks are at least 4 pixels wide, so the block structure reads at a glance.
            var blockPixels = (double)headSize / layout.BlockCount;
            var onGrid = blockPixels >= 4 && (IsBlockEdge(localX, blockPixels) || IsBlockEdge(localY, blockPixels));
            return onGrid ? GridLine : Background;
        }

        // A pixel covering several tokens is shaded by the fraction of them allowed, so fine element masks do not alias away.
        int allowed = 0, total = 0;
        for (var query = queryFrom; query < queryTo; query++)
        {
            for (var key = keyFrom; key < keyTo; key++)
            {
                allowed += layout.IsAllowed(head, query, key) ? 1 : 0;
                total++;
            }
        }

        var fraction = (double)allowed / total;
        return [Blend(0, fraction), Blend(1, fraction), Blend(2, fraction)];
    }

    private static byte Blend(int channel, double fraction) => (byte)Math.Round(Excluded[channel] + (Allowed[channel] - Excluded[channel]) * fraction);

    private static bool IsBlockEdge(int pixel, double blockPixels) => (int)(pixel / blockPixels) != (int)((pixel + 1) / blockPixels);

    private static void WriteChunk(Stream destination, string type, byte[] data)
    {
        Span<byte> number = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(number, data.Length);
        destination.Write(number);
        var typeAndData = new byte[4 + data.Length];
        System.Text.Encoding.ASCII.GetBytes(type, typeAndData);
        data.CopyTo(typeAndData, 4);
        destination.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(number, Crc32(typeAndData));
        destination.Write(number);
    }

    // PNG's CRC-32 (polynomial 0xEDB88320), bitwise: pictures are small, so no table is needed.
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }
}
