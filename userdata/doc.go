// Package userdata renders and validates the Palette Edge installer
// configuration ("user-data") for one host.
//
// The installer is Kairos based and reads a `#cloud-config` YAML document
// fetched from config_url. Its schema is larger than what stagehand knows, so
// the document is handled at the yaml.v3 Node level: fields stagehand does not
// know pass through untouched and keys keep their order (the base's order,
// then keys the overrides add, then keys stagehand computes).
//
// Render builds the document in four steps:
//
//  1. Parse the profile's base user-data and the host's overrides, each
//     bounded (size, node count, depth) and refused if it uses anchors or
//     aliases, has duplicate keys, or is not a mapping at the top level.
//  2. Deep-merge the overrides over the base. Mappings merge key by key,
//     recursively; scalars and sequences from the overriding side replace
//     the base's value whole. Kairos `stages` are lists of steps, and
//     replacing a list is the predictable choice: an operator who overrides
//     `stages.initramfs` gets exactly the steps written, never an
//     interleaving of two files. An explicit null replaces too (it does not
//     delete the key).
//  3. Apply the fields stagehand computes from its inventory: stylus.site.*
//     from the host's Site (only non-empty fields overwrite), the site name
//     (the inventory name wins, because the inventory enforces uniqueness),
//     tags merged key by key, the site network, install.poweroff (true
//     unless the document sets poweroff or reboot; an explicit value is
//     kept, a value that is not a boolean refused), and an after-install
//     stage that reports completion to stagehand's callback URL (appended,
//     after any steps of the base or overrides).
//  4. Validate the merged document against the seed's tables and encode it
//     with a leading "#cloud-config" line.
//
// Comments in the base and overrides are dropped: the document is read by a
// machine, a merge would attach a comment to whatever key ends up next to it,
// and yaml.v3 does not re-emit every comment placement as valid YAML
// (go-yaml/yaml#613, #628).
//
// Every problem is reported as a FieldError naming the field path (for
// example "stylus.site.network.gateway") and the reason, gathered into one
// *ValidationError. Reasons never carry a secret value.
//
// The package has no logger and no I/O; it is safe for concurrent use.
package userdata
