// Package iso9660 reads files straight out of an ISO 9660 image (the
// Palette Edge installer ISO: /boot/kernel, /boot/initrd, /rootfs.squashfs)
// and writes small ISO 9660 images (the cloud-init NoCloud "cidata" seed).
//
// # Why read rather than mount
//
// Mounting needs root, a loop device and the kernel's isofs module, none of
// which a server should depend on (container and sandbox kernels often lack
// isofs), and extracting would copy gigabytes the image already holds. A file
// in an ISO 9660 image is one contiguous byte range, so serving it is
// serving a section of the image file: Stat finds the range, File.Section
// wraps it in an io.SectionReader that http.ServeContent serves with Range
// support, and File.Offset lets a server sendfile from the image itself.
//
// # On-disk layout relied on (ECMA-119, 4th edition)
//
//   - Sectors of 2048 bytes. Sectors 0-15 are the System Area (boot code,
//     ignored). From sector 16, one volume descriptor per sector (8.1):
//     type, "CD001", version. Type 1 is the primary descriptor (8.4), type 2
//     a supplementary one, Joliet when its escape sequence at byte 88 is
//     "%/@", "%/C" or "%/E"; type 255 ends the set (8.3). At most 64 are
//     read.
//   - The primary descriptor gives the volume identifier (byte 40, the
//     label blkid shows), the logical block size (byte 128; extents are
//     counted in these blocks) and the root directory record (byte 156).
//   - A directory is an extent of directory records (9.1): length, extent
//     block, data length (both byte orders, 7.3.3; the little-endian half
//     is read), a 7-byte date, flags (directory, associated, multi-extent),
//     the identifier and a System Use area. Records never cross a sector
//     boundary; a zero length byte pads the rest of a sector (6.8.1.1).
//     The first two records are "." and ".." (identifiers 0x00, 0x01).
//   - Level-1 identifiers are "NAME.EXT;1": the ";1" version and the dot of
//     an empty extension are stripped, and names match case-insensitively.
//   - A level-3 file larger than 4 GiB is several records of the same
//     identifier, all but the last flagged multi-extent (6.5.1). They are
//     merged when their extents are contiguous, as xorriso writes them;
//     otherwise Stat returns ErrFragmented, since no single range exists.
//   - The path table (9.4) is not used: resolving a path walks directory
//     records from the root, which also serves Rock Ridge names.
//
// # System Use Sharing Protocol and Rock Ridge
//
// xorriso, genisoimage and grub-mkrescue record POSIX names with Rock Ridge
// (IEEE P1282) in SUSP entries (IEEE P1281) in each record's System Use
// area: two-byte signature, length, version, data. SUSP is in use when the
// root's "." record starts with an SP entry, whose last byte is a count of
// bytes to skip in every later area. Entries read: NM (the name, possibly
// in several pieces flagged CONTINUE), CE (more entries in a continuation
// area elsewhere, followed at most 16 times, each within one block), ST
// (end), and CL/RE, which undo genisoimage's relocation of directories
// deeper than 8 levels into /rr_moved. Names come from Rock Ridge when
// present, else from the Joliet tree (UCS-2), else from level-1
// identifiers.
//
// # Bounds
//
// Every length read from the image is checked against the sector, record
// or image it claims to lie in before it is used. Directory extents over
// 64 MiB, paths deeper than 32 levels, directories that loop back to an
// ancestor and ReadDir listings over 65536 entries are refused with
// ErrMalformed, as are continuation areas outside their block or the image
// and CE chains longer than 16 or, over one directory, reading more than
// 32 times its size plus 1 MiB. Memory per directory scan is one 32 KiB
// buffer whatever the directory size. A SUSP entry whose length does not
// fit ends that record's Rock Ridge parse and the ISO 9660 name stands, as
// in the Linux kernel: a broken extension must not hide the file.
//
// # Writing
//
// Write lays out a one-directory image: System Area, primary descriptor,
// terminator, type L and M path tables, a continuation area with the Rock
// Ridge ER entry ("RRIP_1991A"), the root directory, then the files. Each
// file gets a unique 8.3 identifier and a Rock Ridge NM entry with its real
// name, so "user-data" and "meta-data" keep their names under the Linux
// kernel, xorriso and isoinfo, and the volume label is written as given
// ("cidata" in lower case, as cloud-init's NoCloud looks for it). Output
// depends only on the input, so an image can be cached and given an ETag.
package iso9660
