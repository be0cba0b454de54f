/* SPDX-License-Identifier: Apache-2.0 */
/* snapshots/<id>/snapshot.json, parsed and written (smolvm_i.h). The record is
 * input: a damaged or planted file gives SMOLVM_ECORRUPT naming it, never a
 * path outside the snapshot dir or an unbounded allocation. Pure: unit-tested
 * (tests/unit/test_snapshot_record.c). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "smolvm_i.h"
#include "vmdir.h"

/* The supervisor removes an ephemeral VM's layers by this form (common/vmdir.h). */
_Static_assert(VMDIR_LAYER_ID_LEN == SMOLVM_ID_LEN, "layer names carry a VM id");

#define SNAP_RECORD_VERSION 1
#define SNAP_RECORD_MAX_BYTES (64u * 1024u)

bool snap_layer_name_valid(const char *s)
{
        return strlen(s) == 6 + SMOLVM_ID_LEN + 6 && !strncmp(s, "layer-", 6) &&
               !strcmp(s + 6 + SMOLVM_ID_LEN, ".qcow2") &&
               ({
                       char id[SMOLVM_ID_LEN + 1];
                       memcpy(id, s + 6, SMOLVM_ID_LEN);
                       id[SMOLVM_ID_LEN] = '\0';
                       vm_id_valid(id);
               });
}

static int get_id(const rec_reader *rr, json_t *root, const char *key, char ret[SMOLVM_ID_LEN + 1])
{
        json_t *v = json_object_get(root, key);
        if (!json_is_string(v) || !vm_id_valid(json_string_value(v)))
                return rec_corrupt(rr, "field '%s' must be %d hex digits", key, SMOLVM_ID_LEN);
        memcpy(ret, json_string_value(v), SMOLVM_ID_LEN + 1);
        return 0;
}

int snap_record_parse(const char *file, const char *text, size_t len, snap_record *ret)
{
        snap_record rec = { 0 };
        json_error_t jerr;
        uint64_t created = 0, vcpus = 0, mem = 0, disk = 0;
        int r;
        const rec_reader src = { .path = file, .what = "snapshot record",
                                 .hint = "the snapshot is damaged: remove it with `smolvm snapshot rm ID`" };
        const rec_reader *rr = &src;

        if (len == 0)
                return rec_corrupt(rr, "the file is empty");
        if (len > SNAP_RECORD_MAX_BYTES)
                return rec_corrupt(rr, "%zu bytes (at most %u)", len, SNAP_RECORD_MAX_BYTES);
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return rec_corrupt(rr, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root)) {
                r = rec_corrupt(rr, "not a JSON object");
                goto fail;
        }
        r = rec_check_version(rr, root, SNAP_RECORD_VERSION, "this snapshot was taken by another smolvm version");
        if (r < 0)
                goto fail;
        if ((r = get_id(rr, root, "id", rec.id)) < 0 || (r = get_id(rr, root, "vm_id", rec.vm_id)) < 0 ||
            (r = rec_get_u64(rr, root, "created", true, 0, INT64_MAX, &created)) < 0 ||
            (r = rec_get_u64(rr, root, "vcpus", true, 1, 64, &vcpus)) < 0 ||
            (r = rec_get_u64(rr, root, "mem_mib", true, 64, 262144, &mem)) < 0 ||
            (r = rec_get_u64(rr, root, "disk_mib", true, 0, 64u * 1024 * 1024, &disk)) < 0 ||
            (r = rec_get_u64(rr, root, "pause_ms", true, 0, UINT32_MAX, &rec.pause_ms)) < 0 ||
            (r = rec_get_u64(rr, root, "ram_bytes", true, 0, UINT64_MAX / 2, &rec.ram_bytes)) < 0 ||
            (r = rec_get_str(rr, root, "name", false, SMOLVM_NAME_MAX, &rec.name)) < 0 ||
            (r = rec_get_str(rr, root, "image", false, 4096, &rec.image)) < 0 ||
            (r = rec_get_str(rr, root, "image_dir", true, 4096, &rec.image_dir)) < 0 ||
            (r = rec_get_str(rr, root, "accel", false, 16, &rec.accel)) < 0 ||
            (r = rec_get_str(rr, root, "kernel_cmdline", false, 2048, &rec.kernel_cmdline)) < 0)
                goto fail;
        if ((r = rec_get_bool(rr, root, "net", &rec.net)) < 0 ||
            (r = rec_get_bool(rr, root, "internal", &rec.internal)) < 0)
                goto fail;
        /* Absent in the records of older smolvms: not known (-1). */
        bool lane;
        if ((r = rec_get_bool(rr, root, "lane", &lane)) < 0)
                goto fail;
        rec.lane = r > 0 ? lane : -1;
        rec.created_unix = (int64_t)created;
        rec.vcpus = (unsigned)vcpus;
        rec.mem_mib = (unsigned)mem;
        rec.disk_mib = (unsigned)disk;
        if (rec.name && !vm_name_valid(rec.name)) {
                r = rec_corrupt(rr, "field 'name' is not a valid name");
                goto fail;
        }
        if ((r = rec_check_image(rr, rec.image_dir, rec.accel)) < 0)
                goto fail;
        /* Mounts: the VM record's own parser and checks; only vsock ones are
         * ever snapshotted (their state files: SNAPDIR_FS_STATE_FMT). */
        vm_record mr = { 0 };
        char why[256];
        if (vm_mounts_parse(root, &mr, why, sizeof(why)) < 0) {
                r = rec_corrupt(rr, "%s", why);
                goto fail;
        }
        rec.mounts = mr.mounts;
        rec.n_mounts = mr.n_mounts;
        if (rec.n_mounts && mr.mount_transport != SMOLVM_MOUNT_VSOCK) {
                r = rec_corrupt(rr, "field 'mount_transport' must be \"vsock\" for a snapshot with mounts");
                goto fail;
        }
        json_t *layers = json_object_get(root, "layers");
        if (!json_is_array(layers) || json_array_size(layers) > SNAPSHOT_MAX_LAYERS) {
                r = rec_corrupt(rr, "field 'layers' must be an array of at most %u file names", SNAPSHOT_MAX_LAYERS);
                goto fail;
        }
        rec.layers = calloc(json_array_size(layers) + 1, sizeof(char *));
        if (!rec.layers) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto fail;
        }
        size_t i;
        json_t *v;
        json_array_foreach(layers, i, v) {
                /* Only our own names: a layer is opened in the snapshot dir, never a
                 * path the file chooses. */
                if (!json_is_string(v) || !snap_layer_name_valid(json_string_value(v))) {
                        r = rec_corrupt(rr, "field 'layers[%zu]' must be a name layer-<%d hex digits>.qcow2", i,
                                    SMOLVM_ID_LEN);
                        goto fail;
                }
                if (!(rec.layers[i] = strdup(json_string_value(v)))) {
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
                rec.n_layers = i + 1;
        }
        json_decref(root);
        *ret = rec;
        return 0;
fail:
        json_decref(root);
        snap_record_done(&rec);
        return r;
}

char *snap_record_format(const snap_record *rec)
{
        json_t *layers = json_array();
        for (size_t i = 0; layers && i < rec->n_layers; i++)
                if (json_array_append_new(layers, json_string(rec->layers[i])) < 0) {
                        json_decref(layers);
                        layers = NULL;
                }
        if (!layers)
                return NULL;
        json_t *o = json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:o}", "version",
                              SNAP_RECORD_VERSION, "id", rec->id, "vm_id", rec->vm_id, "created",
                              (json_int_t)rec->created_unix, "image", rec->image ? rec->image : "default",
                              "image_dir", rec->image_dir, "accel", rec->accel ? rec->accel : "auto", "vcpus",
                              (json_int_t)rec->vcpus, "mem_mib", (json_int_t)rec->mem_mib, "disk_mib",
                              (json_int_t)rec->disk_mib, "internal", rec->internal, "pause_ms",
                              (json_int_t)rec->pause_ms, "ram_bytes", (json_int_t)rec->ram_bytes, "layers", layers);
        if (o && (json_object_set_new(o, "net", json_boolean(rec->net)) < 0 ||
                  (rec->lane >= 0 && json_object_set_new(o, "lane", json_boolean(rec->lane)) < 0))) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->name && json_object_set_new(o, "name", json_string(rec->name)) < 0) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->kernel_cmdline && json_object_set_new(o, "kernel_cmdline", json_string(rec->kernel_cmdline)) < 0) {
                json_decref(o);
                o = NULL;
        }
        if (o && rec->n_mounts) {
                vm_record mr = { .mounts = rec->mounts, .n_mounts = rec->n_mounts };
                if (json_object_set_new(o, "mounts", vm_mounts_to_json(&mr, false)) < 0 ||
                    json_object_set_new(o, "mount_transport", json_string("vsock")) < 0) {
                        json_decref(o);
                        o = NULL;
                }
        }
        char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        json_decref(o);
        return s;
}

void snap_record_done(snap_record *rec)
{
        free(rec->name);
        free(rec->image);
        free(rec->image_dir);
        free(rec->accel);
        free(rec->kernel_cmdline);
        for (size_t i = 0; rec->layers && rec->layers[i]; i++)
                free(rec->layers[i]);
        free(rec->layers);
        vm_mounts_free(rec->mounts, rec->n_mounts);
        *rec = (snap_record){ 0 };
}
