// Full-rate harness of the generated attention engine, for cycle measurements (docs/engine-benchmarks.md).
//
// A DMA model: Q, K, V and the expected O sit in memories loaded from q.hex, k.hex, v.hex and o.hex
// (in the simulator's working directory) on a rising edge of `load`.  The files hold the beats of
// one head in stream order (sim/engine_stream.py): Q and O once per head, K and V once per head
// and replayed for every query block, exactly as docs/engine.md says a DMA engine must send them.
// With grouped heads (kv_heads < heads) a "head" of the streams is a K/V head: Q and O hold its
// group's stacked queries, K and V are its own.
// All streams are always valid while beats remain and O is always ready, so the cycle count is the
// engine's own.  O beats are compared with o.hex (tlast in the top bit) as they arrive.
// With `stall` (out of 1024) above 0, every source raises valid, and every sink (O, the key indices)
// raises ready, only in a cycle whose draw of its own xorshift generator (seeded by `stall_seed`) is at
// least `stall`: random stalls; a raised valid stays until its beat is taken, as AXI4-Stream demands.
// Built with `define SPARSE, the harness drives the pattern registers of a sparse engine and gathers
// K and V by the key indices of its m_axis_kv_index stream (always ready unless 64 tiles are queued):
// then k.hex holds K one element per word, K[h][j][k] at (h*L + j)*d + k, and v.hex one V row chunk
// per word, V[h][j][cc*C +: C] at (h*L + j)*chunks + cc.
// Built with SPARSE and SLIDING (a sliding build), the K and V beats and the key indices have
// U = R + C lanes and V too is gathered by element (v.hex like k.hex): in a diagonal run (`diagonal`
// set) V by the tile's lanes like K, one head-dimension column a beat; otherwise by row chunk as above.
// tb/engine_bench_main.v drives it (clock, load, start, wait): no Python per cycle.
`default_nettype none
module engine_bench #(
    parameter R = 8, parameter C = 8, parameter W = 8,
    parameter Q_WORDS = 1, parameter K_WORDS = 1, parameter V_WORDS = 1, parameter O_WORDS = 1,
    parameter SEQ_BITS = 11, parameter HEAD_BITS = 5, parameter DIM_BITS = 8, parameter MULT_BITS = 16,
    // With `define SPARSE: the engine's pattern registers, and the widths of a key index and the global list.
    parameter KEY_BITS = 1, parameter WINDOW_BITS = 1, parameter DIL_BITS = 1, parameter GCOUNT_BITS = 1,
    parameter GLOBALS_BITS = 1,
    // K and V lanes: C, or R + C in a sliding build.
    parameter U = C
) (
    input  wire                 aclk,
    input  wire                 aresetn,
    input  wire                 load,
    input  wire                 go,
    input  wire [SEQ_BITS-1:0]  seq_len,
    input  wire [HEAD_BITS-1:0] heads,
    input  wire [HEAD_BITS-1:0] kv_heads,
    input  wire [SEQ_BITS-1:0]  query_len,
    input  wire [DIM_BITS-1:0]  head_dim,
    input  wire [MULT_BITS-1:0] scale_mult,
    input  wire [5:0]           scale_shift,
    input  wire [31:0]          blocks,          // query blocks per K/V head
    input  wire [31:0]          k_per_head,      // K beats per head and block
    input  wire [31:0]          v_per_head,      // V beats per head and block
    input  wire [31:0]          q_total,
    input  wire [31:0]          o_total,
    input  wire [10:0]          stall,           // out of 1024: the chance a stream waits in a cycle
    input  wire [31:0]          stall_seed,
`ifdef SPARSE
    input  wire [2:0]             pattern,
    input  wire [WINDOW_BITS-1:0] window,
    input  wire [DIL_BITS-1:0]    dilation,
    input  wire [SEQ_BITS-1:0]    grid_h,
    input  wire [SEQ_BITS-1:0]    grid_w,
    input  wire [WINDOW_BITS-1:0] window_h,
    input  wire [WINDOW_BITS-1:0] window_w,
    input  wire [GCOUNT_BITS-1:0] global_count,
    input  wire [GLOBALS_BITS-1:0] global_tokens,
    input  wire [31:0]            chunks,          // ceil(head_dim / C): V beats per key of a tile
`endif
`ifdef SLIDING
    input  wire                   diagonal,
`endif
    output reg  [31:0]          o_seen,
    output reg  [31:0]          mismatches,
    output reg  [31:0]          first_in,
    output reg  [31:0]          last_out,
    output reg                  started_in,
    output wire                 busy,
    output wire                 done,
    output wire [31:0]          cycles
);
    reg [R*W-1:0] q_mem [0:Q_WORDS-1];
`ifdef SPARSE
    reg [W-1:0]   k_mem [0:K_WORDS-1];
`else
    reg [C*W-1:0] k_mem [0:K_WORDS-1];
`endif
`ifdef SLIDING
    reg [W-1:0]   v_mem [0:V_WORDS-1];
`else
    reg [C*W-1:0] v_mem [0:V_WORDS-1];
`endif
    reg [C*W:0]   o_mem [0:O_WORDS-1];
    always @(posedge load) begin
        $readmemh("q.hex", q_mem);
        $readmemh("k.hex", k_mem);
        $readmemh("v.hex", v_mem);
        $readmemh("o.hex", o_mem);
    end

    // Per stream: beat within the head's block pass, block, head.
    reg [31:0] q_at, k_at, k_block, k_head, v_at, v_block, v_head;

    // Random stalls: one xorshift32 generator per stream (Q, K, V, O, key indices).
    function automatic [31:0] xorshift(input [31:0] x);
        reg [31:0] y;
        begin
            y = x ^ (x << 13);
            y = y ^ (y >> 17);
            xorshift = y ^ (y << 5);
        end
    endfunction
    reg [31:0] draw [0:4];
    wire q_go = {1'b0, draw[0][9:0]} >= stall, k_go = {1'b0, draw[1][9:0]} >= stall;
    wire v_go = {1'b0, draw[2][9:0]} >= stall, o_ready = {1'b0, draw[3][9:0]} >= stall;
    wire idx_go = {1'b0, draw[4][9:0]} >= stall;
    reg q_held, k_held, v_held;   // a valid raised and not yet taken
    integer g;
    always @(posedge aclk)
        for (g = 0; g < 5; g = g + 1)
            draw[g] <= (!aresetn || go) ? (stall_seed ^ (32'h9E3779B9 * (g + 1))) | 1 : xorshift(draw[g]);
    wire q_has = q_at < q_total;
    wire q_valid = q_has & (q_held | q_go);
`ifdef SPARSE
    // The DMA follows m_axis_kv_index: each tile's keys go into a queue read by K and by V, with its head.
    localparam QDEPTH = 64;
    reg [U*KEY_BITS-1:0] kq_keys [0:QDEPTH-1];
    reg [U-1:0] kq_keep [0:QDEPTH-1];
    reg [31:0] kq_head [0:QDEPTH-1];
    reg [6:0] kq_w, kq_r, vq_r;
    reg [31:0] index_blocks, index_head, v_cc;
    wire idx_valid, idx_last;
    wire [U*KEY_BITS-1:0] idx_keys;
    wire [U-1:0] idx_keep;
    wire idx_ready = ((kq_w - vq_r) < QDEPTH) & idx_go;
    wire k_has = kq_r != kq_w;
    wire v_has = vq_r != kq_w;
    wire [U*KEY_BITS-1:0] k_keys = kq_keys[kq_r[5:0]], v_keys_of = kq_keys[vq_r[5:0]];
    wire [U-1:0] k_keep = kq_keep[kq_r[5:0]], v_keep = kq_keep[vq_r[5:0]];
    wire [31:0] k_base = kq_head[kq_r[5:0]] * seq_len, v_base = kq_head[vq_r[5:0]] * seq_len;
    integer lane;
    reg [31:0] v_keys;
    reg [U*W-1:0] k_beat;
    always @* begin
        v_keys = 0;
        for (lane = 0; lane < U; lane = lane + 1) v_keys = v_keys + v_keep[lane];
        for (lane = 0; lane < U; lane = lane + 1)
            k_beat[lane*W +: W] = k_keep[lane]
                ? k_mem[(k_base + k_keys[lane*KEY_BITS +: KEY_BITS]) * head_dim + k_at] : {W{1'b0}};
    end
`ifdef SLIDING
    // V by element: a diagonal run's beat is column v_at over the tile's lanes (d beats a tile); a
    // gathered run's is key v_at's row chunk v_cc.
    reg [U*W-1:0] v_beat;
    wire [31:0] v_row_key = v_keys_of[v_at*KEY_BITS +: KEY_BITS];
    always @* begin
        v_beat = 0;
        for (lane = 0; lane < U; lane = lane + 1)
            if (diagonal)
                v_beat[lane*W +: W] = v_keep[lane]
                    ? v_mem[(v_base + v_keys_of[lane*KEY_BITS +: KEY_BITS]) * head_dim + v_at] : {W{1'b0}};
            else if (lane < C && v_cc * C + lane < head_dim)
                v_beat[lane*W +: W] = v_mem[(v_base + v_row_key) * head_dim + v_cc * C + lane];
    end
    wire [31:0] v_tile_beats = diagonal ? head_dim : v_keys;
    wire [31:0] v_tile_chunks = diagonal ? 1 : chunks;
`else
    wire [31:0] v_addr = (v_base + v_keys_of[v_at*KEY_BITS +: KEY_BITS]) * chunks + v_cc;
    wire [31:0] v_tile_beats = v_keys, v_tile_chunks = chunks;
`endif
`else
    wire k_has = k_head < kv_heads;
    wire v_has = v_head < kv_heads;
    wire [31:0] k_addr = k_head * k_per_head + k_at;
    wire [31:0] v_addr = v_head * v_per_head + v_at;
`endif
    wire k_valid = k_has & (k_held | k_go);
    wire v_valid = v_has & (v_held | v_go);
    wire q_ready, k_ready, v_ready, o_valid, o_last;
    wire [C*W-1:0] o_data;
    reg [31:0] now;

    attention_engine dut (
        .aclk(aclk), .aresetn(aresetn),
        .s_axis_q_tdata(q_valid ? q_mem[q_at] : {R*W{1'b0}}), .s_axis_q_tvalid(q_valid),
        .s_axis_q_tready(q_ready), .s_axis_q_tlast(1'b0),
`ifdef SPARSE
        .s_axis_k_tdata(k_valid ? k_beat : {U*W{1'b0}}), .s_axis_k_tvalid(k_valid),
`else
        .s_axis_k_tdata(k_valid ? k_mem[k_addr] : {C*W{1'b0}}), .s_axis_k_tvalid(k_valid),
`endif
        .s_axis_k_tready(k_ready), .s_axis_k_tlast(1'b0),
`ifdef SLIDING
        .s_axis_v_tdata(v_valid ? v_beat : {U*W{1'b0}}), .s_axis_v_tvalid(v_valid),
`else
        .s_axis_v_tdata(v_valid ? v_mem[v_addr] : {C*W{1'b0}}), .s_axis_v_tvalid(v_valid),
`endif
        .s_axis_v_tready(v_ready), .s_axis_v_tlast(1'b0),
        .m_axis_o_tdata(o_data), .m_axis_o_tvalid(o_valid), .m_axis_o_tready(o_ready), .m_axis_o_tlast(o_last),
        .ctrl_start(go), .ctrl_seq_len(seq_len), .ctrl_heads(heads), .ctrl_kv_heads(kv_heads),
        .ctrl_query_len(query_len), .ctrl_head_dim(head_dim),
        .ctrl_scale_mult(scale_mult), .ctrl_scale_shift(scale_shift),
        .ctrl_busy(busy), .ctrl_done(done), .ctrl_error(), .ctrl_cycles(cycles)
`ifdef SPARSE
        , .ctrl_pattern(pattern), .ctrl_window(window), .ctrl_dilation(dilation), .ctrl_grid_h(grid_h),
        .ctrl_grid_w(grid_w), .ctrl_window_h(window_h), .ctrl_window_w(window_w),
        .ctrl_global_count(global_count), .ctrl_global_tokens(global_tokens),
        .m_axis_kv_index_tdata(idx_keys), .m_axis_kv_index_tkeep(idx_keep), .m_axis_kv_index_tvalid(idx_valid),
        .m_axis_kv_index_tready(idx_ready), .m_axis_kv_index_tlast(idx_last)
`endif
`ifdef SLIDING
        , .ctrl_diagonal(diagonal), .m_axis_kv_index_tuser()
`endif
    );

    wire any_in = (q_valid & q_ready) | (k_valid & k_ready) | (v_valid & v_ready);
    always @(posedge aclk) begin
        if (!aresetn || go) begin
            q_at <= 0; k_at <= 0; k_block <= 0; k_head <= 0; v_at <= 0; v_block <= 0; v_head <= 0;
`ifdef SPARSE
            kq_w <= 0; kq_r <= 0; vq_r <= 0; index_blocks <= 0; index_head <= 0; v_cc <= 0;
`endif
            o_seen <= 0; mismatches <= 0; first_in <= 0; last_out <= 0; started_in <= 0; now <= 0;
            q_held <= 0; k_held <= 0; v_held <= 0;
        end else begin
            now <= now + 1;
            q_held <= q_valid & ~q_ready;
            k_held <= k_valid & ~k_ready;
            v_held <= v_valid & ~v_ready;
            if (any_in && !started_in) begin
                started_in <= 1;
                first_in <= now;
            end
            if (q_valid && q_ready) q_at <= q_at + 1;
`ifdef SPARSE
            if (idx_valid && idx_ready) begin
                kq_keys[kq_w[5:0]] <= idx_keys;
                kq_keep[kq_w[5:0]] <= idx_keep;
                kq_head[kq_w[5:0]] <= index_head;
                kq_w <= kq_w + 1;
                if (idx_last) begin
                    if (index_blocks + 1 == blocks) begin index_blocks <= 0; index_head <= index_head + 1; end
                    else index_blocks <= index_blocks + 1;
                end
            end
            if (k_valid && k_ready) begin
                if (k_at + 1 == head_dim) begin k_at <= 0; kq_r <= kq_r + 1; end
                else k_at <= k_at + 1;
            end
            if (v_valid && v_ready) begin   // per chunk, one beat per key of the tile
                if (v_at + 1 == v_tile_beats) begin
                    v_at <= 0;
                    if (v_cc + 1 == v_tile_chunks) begin v_cc <= 0; vq_r <= vq_r + 1; end
                    else v_cc <= v_cc + 1;
                end else v_at <= v_at + 1;
            end
`else
            if (k_valid && k_ready) begin
                if (k_at + 1 == k_per_head) begin
                    k_at <= 0;
                    if (k_block + 1 == blocks) begin k_block <= 0; k_head <= k_head + 1; end
                    else k_block <= k_block + 1;
                end else k_at <= k_at + 1;
            end
            if (v_valid && v_ready) begin
                if (v_at + 1 == v_per_head) begin
                    v_at <= 0;
                    if (v_block + 1 == blocks) begin v_block <= 0; v_head <= v_head + 1; end
                    else v_block <= v_block + 1;
                end else v_at <= v_at + 1;
            end
`endif
            if (o_valid && o_ready) begin
                if (o_seen >= o_total || {o_last, o_data} != o_mem[o_seen]) mismatches <= mismatches + 1;
                o_seen <= o_seen + 1;
                last_out <= now;
            end
        end
    end
endmodule
`default_nettype wire
