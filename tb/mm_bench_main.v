// Self-contained throughput bench of attention_engine_mm: the top against tb/axi_memory.v, no cocotb.
//
// gen/simulate.py (measure_engine_mm) writes mem.hex (the memory image, tensors placed) and regs.hex
// (one line per register write: offset and value, 8 hex digits each) into the working directory, runs
// this bench with +regs=<lines> +ctrl=<CTRL offset> +bytes_read=<offset> +bytes_written=<offset>
// +budget=<cycles>, and reads back the RESULT line and out.hex (the memory after the run).
`timescale 1ns/1ps
`default_nettype none
module mm_bench_main #(
    parameter ADDR_WIDTH = 32, parameter DATA_WIDTH = 64, parameter ID_WIDTH = 4, parameter AXIL_WIDTH = 8,
    parameter MEM_BYTES = 65536, parameter LATENCY = 100, parameter BYTES_PER_CYCLE = 8
);
    reg aclk = 1'b0;
    always #5 aclk = ~aclk;
    reg aresetn = 1'b0, dump = 1'b0;
    reg [AXIL_WIDTH-1:0] s_axil_awaddr = 0, s_axil_araddr = 0;
    reg [31:0] s_axil_wdata = 0;
    reg s_axil_awvalid = 0, s_axil_wvalid = 0, s_axil_bready = 0, s_axil_arvalid = 0, s_axil_rready = 0;
    wire s_axil_awready, s_axil_wready, s_axil_bvalid, s_axil_arready, s_axil_rvalid, irq;
    wire [1:0] s_axil_bresp, s_axil_rresp;
    wire [31:0] s_axil_rdata;
    wire [ADDR_WIDTH-1:0] awaddr, araddr;
    wire [7:0] awlen, arlen;
    wire [ID_WIDTH-1:0] awid, arid, bid, rid;
    wire [2:0] awsize, arsize, awprot, arprot;
    wire [1:0] awburst, arburst, bresp, rresp;
    wire [3:0] awcache, arcache, awqos, arqos;
    wire awlock, arlock, awvalid, awready, wlast, wvalid, wready, bvalid, bready, arvalid, arready;
    wire rlast, rvalid, rready;
    wire [DATA_WIDTH-1:0] wdata, rdata;
    wire [DATA_WIDTH/8-1:0] wstrb;

    attention_engine_mm dut (
        .aclk(aclk), .aresetn(aresetn), .irq(irq),
        .s_axil_awaddr(s_axil_awaddr), .s_axil_awvalid(s_axil_awvalid), .s_axil_awready(s_axil_awready),
        .s_axil_wdata(s_axil_wdata), .s_axil_wstrb(4'hF), .s_axil_wvalid(s_axil_wvalid),
        .s_axil_wready(s_axil_wready), .s_axil_bresp(s_axil_bresp), .s_axil_bvalid(s_axil_bvalid),
        .s_axil_bready(s_axil_bready), .s_axil_araddr(s_axil_araddr), .s_axil_arvalid(s_axil_arvalid),
        .s_axil_arready(s_axil_arready), .s_axil_rdata(s_axil_rdata), .s_axil_rresp(s_axil_rresp),
        .s_axil_rvalid(s_axil_rvalid), .s_axil_rready(s_axil_rready),
        .m_axi_awid(awid), .m_axi_awaddr(awaddr), .m_axi_awlen(awlen), .m_axi_awsize(awsize),
        .m_axi_awburst(awburst), .m_axi_awlock(awlock), .m_axi_awcache(awcache), .m_axi_awprot(awprot),
        .m_axi_awqos(awqos), .m_axi_awvalid(awvalid), .m_axi_awready(awready),
        .m_axi_wdata(wdata), .m_axi_wstrb(wstrb), .m_axi_wlast(wlast), .m_axi_wvalid(wvalid),
        .m_axi_wready(wready), .m_axi_bid(bid), .m_axi_bresp(bresp), .m_axi_bvalid(bvalid),
        .m_axi_bready(bready),
        .m_axi_arid(arid), .m_axi_araddr(araddr), .m_axi_arlen(arlen), .m_axi_arsize(arsize),
        .m_axi_arburst(arburst), .m_axi_arlock(arlock), .m_axi_arcache(arcache), .m_axi_arprot(arprot),
        .m_axi_arqos(arqos), .m_axi_arvalid(arvalid), .m_axi_arready(arready),
        .m_axi_rid(rid), .m_axi_rdata(rdata), .m_axi_rresp(rresp), .m_axi_rlast(rlast), .m_axi_rvalid(rvalid),
        .m_axi_rready(rready)
    );

    axi_memory #(.ADDR_WIDTH(ADDR_WIDTH), .DATA_WIDTH(DATA_WIDTH), .ID_WIDTH(ID_WIDTH), .MEM_BYTES(MEM_BYTES),
                 .LATENCY(LATENCY), .BYTES_PER_CYCLE(BYTES_PER_CYCLE)) memory (
        .aclk(aclk), .aresetn(aresetn), .dump(dump),
        .awaddr(awaddr), .awlen(awlen), .awvalid(awvalid), .awready(awready),
        .wdata(wdata), .wstrb(wstrb), .wlast(wlast), .wvalid(wvalid), .wready(wready),
        .bresp(bresp), .bvalid(bvalid), .bready(bready), .bid(bid),
        .araddr(araddr), .arlen(arlen), .arvalid(arvalid), .arready(arready),
        .rdata(rdata), .rresp(rresp), .rlast(rlast), .rvalid(rvalid), .rready(rready), .rid(rid)
    );

    // Inputs change on the falling edge, away from the design's rising edge.
    task automatic axil_write(input [31:0] offset, input [31:0] value);
        begin
            @(negedge aclk);
            s_axil_awaddr = offset[AXIL_WIDTH-1:0]; s_axil_wdata = value;
            s_axil_awvalid = 1; s_axil_wvalid = 1; s_axil_bready = 1;
            @(posedge aclk);
            while (!s_axil_awready) @(posedge aclk);
            @(negedge aclk) begin s_axil_awvalid = 0; s_axil_wvalid = 0; end
            while (!s_axil_bvalid) @(posedge aclk);
            @(negedge aclk) s_axil_bready = 0;
        end
    endtask

    task automatic axil_read(input [31:0] offset, output [31:0] value);
        begin
            @(negedge aclk);
            s_axil_araddr = offset[AXIL_WIDTH-1:0]; s_axil_arvalid = 1; s_axil_rready = 1;
            @(posedge aclk);
            while (!s_axil_arready) @(posedge aclk);
            @(negedge aclk) s_axil_arvalid = 0;
            while (!s_axil_rvalid) @(posedge aclk);
            value = s_axil_rdata;
            @(negedge aclk) s_axil_rready = 0;
        end
    endtask

    reg [63:0] writes [0:255];
    integer n_regs, ctrl, bytes_read_at, bytes_written_at, budget, k, start, stop;
    reg [31:0] status, bytes_read, bytes_written;
    reg [63:0] cycle = 0;
    always @(posedge aclk) cycle <= cycle + 1;

    initial begin
        if (!$value$plusargs("regs=%d", n_regs) || !$value$plusargs("ctrl=%d", ctrl)
            || !$value$plusargs("bytes_read=%d", bytes_read_at) || !$value$plusargs("bytes_written=%d", bytes_written_at)
            || !$value$plusargs("budget=%d", budget)) begin
            $display("ERROR missing plusargs (+regs= +ctrl= +bytes_read= +bytes_written= +budget=)");
            $finish;
        end
        $readmemh("regs.hex", writes);
        repeat (3) @(negedge aclk);
        aresetn = 1'b1;
        repeat (3) @(negedge aclk);
        for (k = 0; k < n_regs; k = k + 1) axil_write(writes[k][63:32], writes[k][31:0]);
        axil_write(ctrl, 1);
        start = cycle;
        stop = start + budget;
        while (!irq && cycle < stop) @(posedge aclk);
        stop = cycle;
        axil_read(ctrl, status);
        axil_read(bytes_read_at, bytes_read);
        axil_read(bytes_written_at, bytes_written);
        @(negedge aclk) dump = 1'b1;
        @(negedge aclk) dump = 1'b0;
        $display("RESULT done=%0d cycles=%0d status=%0d bytes_read=%0d bytes_written=%0d",
                 irq, stop - start, status, bytes_read, bytes_written);
        $finish;
    end
endmodule
`default_nettype wire
