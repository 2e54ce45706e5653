"""The generated C driver of the memory-mapped top: it compiles cleanly and programs what the map says.

A small C program links the driver against a fake register window: its ``wait_irq`` checks every
register the run needs against the job (offsets from the generated header, values from the job),
then raises DONE; a wrong ID, a refused start (ERROR) and a bus error return their codes.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from attn_rtl.gen.generate import write_outputs

PROGRAM = r"""
#include <stdio.h>
#include "attention_engine_mm_driver.h"

#define P(x) ATTENTION_ENGINE_MM_##x
static uint32_t regs[256];
static const attn_reg extra[] = {{P(LISTS), 5}, {P(K_MSB_BITS), 4}};
static const attn_job job = {77, 8, 2, 3, 64, 12345, 9, {0x1001, 5, 333}, {0x2002, 7, 444},
                             {0x3003, 11, 555}, {0x4004, 13, 666}, extra, 2};
static uint32_t finish_with;

static int fake_irq(void *ctx)
{
    static const struct { uint32_t offset, value; } want[] = {
        {P(SEQ_LEN), 77}, {P(HEADS), 8}, {P(KV_HEADS), 2}, {P(QUERY_LEN), 3}, {P(HEAD_DIM), 64},
        {P(SCALE_MULT), 12345}, {P(SCALE_SHIFT), 9},
        {P(Q_BASE), 0x1001}, {P(Q_ROW_STRIDE), 5}, {P(Q_HEAD_STRIDE), 333},
        {P(K_BASE), 0x2002}, {P(K_ROW_STRIDE), 7}, {P(K_HEAD_STRIDE), 444},
        {P(V_BASE), 0x3003}, {P(V_ROW_STRIDE), 11}, {P(V_HEAD_STRIDE), 555},
        {P(O_BASE), 0x4004}, {P(O_ROW_STRIDE), 13}, {P(O_HEAD_STRIDE), 666}, {P(LISTS), 5}, {P(K_MSB_BITS), 4}};
    unsigned i;
    (void)ctx;
    for (i = 0; i < sizeof want / sizeof want[0]; i++)
        if (regs[want[i].offset / 4] != want[i].value) {
            printf("register 0x%x holds %u, expected %u\n", want[i].offset, regs[want[i].offset / 4], want[i].value);
            return 1;
        }
    if (regs[P(CTRL) / 4] != P(CTRL_START)) {
        printf("CTRL holds %u, expected START\n", regs[P(CTRL) / 4]);
        return 1;
    }
    regs[P(CTRL) / 4] = finish_with;
    return 1;
}

int main(void)
{
    uint32_t read, written;
    int got;
    regs[P(ID) / 4] = P(ID_VALUE);
    regs[P(VERSION) / 4] = P(MAP_VERSION);
    finish_with = P(CTRL_DONE);
    got = attention_engine_mm_run(regs, &job, fake_irq, 0, 0);
    regs[P(BYTES_READ) / 4] = 1234;
    regs[P(BYTES_WRITTEN) / 4] = 56;
    attention_engine_mm_bytes(regs, &read, &written);
    finish_with = P(CTRL_ERROR);
    regs[P(CTRL) / 4] = 0;
    int refused = attention_engine_mm_run(regs, &job, fake_irq, 0, 0);
    finish_with = 1u << 4;
    regs[P(CTRL) / 4] = 0;
    int bus = attention_engine_mm_run(regs, &job, fake_irq, 0, 0);
    regs[P(CTRL) / 4] = 0;
    int timeout = attention_engine_mm_run(regs, &job, 0, 0, 5);
    regs[P(ID) / 4] = 0;
    int absent = attention_engine_mm_run(regs, &job, fake_irq, 0, 0);
    printf("%d %u %u %d %d %d %d\n", got, read, written, refused, bus, timeout, absent);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_driver_programs_the_map_and_reports_every_outcome(tmp_path):
    write_outputs("engine_mm", dict(rows=2, cols=3, max_seq_len=128, max_heads=8, max_head_dim=64, row_flags=True),
                  tmp_path)
    (tmp_path / "main.c").write_text(PROGRAM)
    build = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", "main", "main.c",
                            "attention_engine_mm_driver.c"], cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True).stdout.split()
    # run OK, the byte counters, ERROR -> RANGE, READ_ERROR -> BUS, polling gives up, no device -> ID
    assert out == ["0", "1234", "56", "-3", "-4", "-5", "-1"], out
