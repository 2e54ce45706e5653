// Self-contained driver of tb/engine_bench.v for cycle measurements: its own clock, no cocotb.
//
// gen/simulate.py (measure_engine) writes q.hex, k.hex, v.hex and o.hex into the working directory,
// runs this testbench with the run's figures as plusargs, and reads back the one `RESULT` line.
// Without VPI no signal must be public, so Verilator optimizes the whole model.
`timescale 1ns/1ps
`default_nettype none
module engine_bench_main #(
    parameter R = 8, parameter C = 8, parameter W = 8,
    parameter Q_WORDS = 1, parameter K_WORDS = 1, parameter V_WORDS = 1, parameter O_WORDS = 1,
    parameter SEQ_BITS = 11, parameter HEAD_BITS = 5, parameter DIM_BITS = 8, parameter MULT_BITS = 16,
    parameter KEY_BITS = 1, parameter WINDOW_BITS = 1, parameter DIL_BITS = 1, parameter GCOUNT_BITS = 1,
    parameter GLOBALS_BITS = 1, parameter U = C
);
    reg aclk = 1'b0;
    always #5 aclk = ~aclk;
    reg aresetn = 1'b0, load = 1'b0, go = 1'b0;
    reg [31:0] seq_len, heads, kv_heads, query_len, head_dim, scale_mult, scale_shift;
    reg [31:0] blocks, k_per_head, v_per_head, q_total, o_total, budget, waited, stall, stall_seed;
    wire [31:0] o_seen, mismatches, first_in, last_out, cycles;
    wire started_in, busy, done;
`ifdef SPARSE
    reg [31:0] pattern, window, dilation, grid_h, grid_w, window_h, window_w, global_count, chunks;
    reg [GLOBALS_BITS-1:0] global_tokens;
`endif
`ifdef SLIDING
    reg [31:0] diagonal;
`endif

    engine_bench #(
        .R(R), .C(C), .W(W), .Q_WORDS(Q_WORDS), .K_WORDS(K_WORDS), .V_WORDS(V_WORDS), .O_WORDS(O_WORDS),
        .SEQ_BITS(SEQ_BITS), .HEAD_BITS(HEAD_BITS), .DIM_BITS(DIM_BITS), .MULT_BITS(MULT_BITS),
        .KEY_BITS(KEY_BITS), .WINDOW_BITS(WINDOW_BITS), .DIL_BITS(DIL_BITS), .GCOUNT_BITS(GCOUNT_BITS),
        .GLOBALS_BITS(GLOBALS_BITS), .U(U)
    ) bench (
        .aclk(aclk), .aresetn(aresetn), .load(load), .go(go),
        .seq_len(seq_len[SEQ_BITS-1:0]), .heads(heads[HEAD_BITS-1:0]), .kv_heads(kv_heads[HEAD_BITS-1:0]),
        .query_len(query_len[SEQ_BITS-1:0]), .head_dim(head_dim[DIM_BITS-1:0]),
        .scale_mult(scale_mult[MULT_BITS-1:0]), .scale_shift(scale_shift[5:0]),
        .blocks(blocks), .k_per_head(k_per_head), .v_per_head(v_per_head), .q_total(q_total), .o_total(o_total),
        .stall(stall[10:0]), .stall_seed(stall_seed),
        .o_seen(o_seen), .mismatches(mismatches), .first_in(first_in), .last_out(last_out),
        .started_in(started_in), .busy(busy), .done(done), .cycles(cycles)
`ifdef SPARSE
        , .pattern(pattern[2:0]), .window(window[WINDOW_BITS-1:0]), .dilation(dilation[DIL_BITS-1:0]),
        .grid_h(grid_h[SEQ_BITS-1:0]), .grid_w(grid_w[SEQ_BITS-1:0]), .window_h(window_h[WINDOW_BITS-1:0]),
        .window_w(window_w[WINDOW_BITS-1:0]), .global_count(global_count[GCOUNT_BITS-1:0]),
        .global_tokens(global_tokens), .chunks(chunks)
`endif
`ifdef SLIDING
        , .diagonal(diagonal[0])
`endif
    );

    task automatic required(input [8*16-1:0] name, input integer found);
        if (!found) begin
            $display("ERROR missing plusarg +%0s=", name);
            $finish;
        end
    endtask

    initial begin
        required("seq_len", $value$plusargs("seq_len=%d", seq_len));
        required("heads", $value$plusargs("heads=%d", heads));
        required("kv_heads", $value$plusargs("kv_heads=%d", kv_heads));
        required("query_len", $value$plusargs("query_len=%d", query_len));
        required("head_dim", $value$plusargs("head_dim=%d", head_dim));
        required("scale_mult", $value$plusargs("scale_mult=%d", scale_mult));
        required("scale_shift", $value$plusargs("scale_shift=%d", scale_shift));
        required("blocks", $value$plusargs("blocks=%d", blocks));
        required("k_per_head", $value$plusargs("k_per_head=%d", k_per_head));
        required("v_per_head", $value$plusargs("v_per_head=%d", v_per_head));
        required("q_total", $value$plusargs("q_total=%d", q_total));
        required("o_total", $value$plusargs("o_total=%d", o_total));
        required("budget", $value$plusargs("budget=%d", budget));
        if (!$value$plusargs("stall=%d", stall)) stall = 0;             // optional: random stalls
        if (!$value$plusargs("stall_seed=%d", stall_seed)) stall_seed = 1;
`ifdef SPARSE
        required("pattern", $value$plusargs("pattern=%d", pattern));
        required("window", $value$plusargs("window=%d", window));
        required("dilation", $value$plusargs("dilation=%d", dilation));
        required("grid_h", $value$plusargs("grid_h=%d", grid_h));
        required("grid_w", $value$plusargs("grid_w=%d", grid_w));
        required("window_h", $value$plusargs("window_h=%d", window_h));
        required("window_w", $value$plusargs("window_w=%d", window_w));
        required("global_count", $value$plusargs("global_count=%d", global_count));
        required("global_tokens", $value$plusargs("global_tokens=%h", global_tokens));
        required("chunks", $value$plusargs("chunks=%d", chunks));
`endif
`ifdef SLIDING
        required("diagonal", $value$plusargs("diagonal=%d", diagonal));
`endif
        // Inputs change on the falling edge, away from the design's rising edge.
        repeat (3) @(negedge aclk);
        aresetn = 1'b1;
        load = 1'b1;
        @(negedge aclk) load = 1'b0;
        go = 1'b1;
        @(negedge aclk) go = 1'b0;
        repeat (2) @(negedge aclk);
        waited = 0;
        while (!done && waited < budget) begin
            @(negedge aclk);
            waited = waited + 1;
        end
        repeat (16) @(negedge aclk);
        $display("RESULT done=%0d o_seen=%0d mismatches=%0d first_in=%0d last_out=%0d cycles=%0d waited=%0d",
                 done, o_seen, mismatches, first_in, last_out, cycles, waited);
        $finish;
    end
endmodule
`default_nettype wire
