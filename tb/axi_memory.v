// A behavioural AXI4 slave memory for throughput measurements: fixed latency, limited bytes per cycle.
//
// Every read burst's data starts LATENCY cycles after its address is taken (addresses queue: latencies
// overlap, as in a DRAM controller with many requests open); every write burst is answered LATENCY cycles
// after its last beat.  Data beats, read and written together, move at most BYTES_PER_CYCLE bytes a cycle
// on average (a credit of bytes refilled every cycle).  INCR bursts only; IDs are echoed as 0.
// The contents load from mem.hex ($readmemh, a byte per line) and are written to out.hex on `dump`.
`timescale 1ns/1ps
`default_nettype none
module axi_memory #(
    parameter ADDR_WIDTH = 32, parameter DATA_WIDTH = 64, parameter ID_WIDTH = 4,
    parameter MEM_BYTES = 65536, parameter LATENCY = 100, parameter BYTES_PER_CYCLE = 8, parameter QUEUE = 64
) (
    input wire aclk, input wire aresetn, input wire dump,
    input wire [ADDR_WIDTH-1:0] awaddr, input wire [7:0] awlen, input wire awvalid, output wire awready,
    input wire [DATA_WIDTH-1:0] wdata, input wire [DATA_WIDTH/8-1:0] wstrb, input wire wlast, input wire wvalid,
    output wire wready,
    output wire [1:0] bresp, output wire bvalid, input wire bready, output wire [ID_WIDTH-1:0] bid,
    input wire [ADDR_WIDTH-1:0] araddr, input wire [7:0] arlen, input wire arvalid, output wire arready,
    output reg [DATA_WIDTH-1:0] rdata, output wire [1:0] rresp, output wire rlast, output wire rvalid,
    input wire rready, output wire [ID_WIDTH-1:0] rid
);
    localparam B = DATA_WIDTH / 8;
    reg [7:0] mem [0:MEM_BYTES-1];
    initial $readmemh("mem.hex", mem);
    always @(posedge aclk) if (dump) $writememh("out.hex", mem);

    reg [63:0] now = 0;
    always @(posedge aclk) now <= now + 1;
    integer credit = 0;

    // Read addresses: (address, beats, cycle the data may start).
    reg [ADDR_WIDTH-1:0] ar_addr [0:QUEUE-1];
    reg [8:0] ar_beats [0:QUEUE-1];
    reg [63:0] ar_due [0:QUEUE-1];
    integer ar_head = 0, ar_tail = 0, ar_count = 0;
    reg [ADDR_WIDTH-1:0] r_addr;
    reg [8:0] r_left = 0;
    assign arready = aresetn && ar_count < QUEUE;
    assign rvalid = r_left != 0 && credit >= B;
    assign rlast = r_left == 1;
    assign rresp = 2'b00;
    assign rid = 0;
    // The next burst starts as the last beat of the current one leaves (no bubble between bursts).
    wire r_next = (r_left == 0 || (rvalid && rready && r_left == 1)) && ar_count != 0 && ar_due[ar_head] <= now;
    integer i;
    always @(*) for (i = 0; i < B; i = i + 1) rdata[8*i +: 8] = mem[(r_addr + i) % MEM_BYTES];

    // Write addresses and responses.
    reg [ADDR_WIDTH-1:0] aw_addr [0:QUEUE-1];
    integer aw_head = 0, aw_tail = 0, aw_count = 0;
    reg [ADDR_WIDTH-1:0] w_addr;
    reg w_open = 0;
    reg [63:0] b_due [0:QUEUE-1];
    integer b_head = 0, b_tail = 0, b_count = 0;
    assign awready = aresetn && aw_count < QUEUE;
    wire w_credit = credit >= B + (rvalid && rready ? B : 0);
    assign wready = aresetn && (w_open || aw_count != 0) && w_credit && b_count < QUEUE;
    assign bvalid = b_count != 0 && b_due[b_head] <= now;
    assign bresp = 2'b00;
    assign bid = 0;

    always @(posedge aclk) begin
        if (!aresetn) begin
            ar_head <= 0; ar_tail <= 0; ar_count <= 0; r_left <= 0;
            aw_head <= 0; aw_tail <= 0; aw_count <= 0; w_open <= 0;
            b_head <= 0; b_tail <= 0; b_count <= 0; credit <= 0;
        end else begin
            credit <= (credit + BYTES_PER_CYCLE > 2 * B ? 2 * B : credit + BYTES_PER_CYCLE)
                      - (rvalid && rready ? B : 0) - (wvalid && wready ? B : 0);
            if (arvalid && arready) begin
                ar_addr[ar_tail] <= araddr;
                ar_beats[ar_tail] <= arlen + 1;
                ar_due[ar_tail] <= now + LATENCY;
                ar_tail <= (ar_tail + 1) % QUEUE;
            end
            if (r_next) begin
                r_addr <= ar_addr[ar_head];
                r_left <= ar_beats[ar_head];
                ar_head <= (ar_head + 1) % QUEUE;
            end else if (rvalid && rready) begin
                r_addr <= r_addr + B;
                r_left <= r_left - 1;
            end
            ar_count <= ar_count + (arvalid && arready) - r_next;
            if (awvalid && awready) begin
                aw_addr[aw_tail] <= awaddr;
                aw_tail <= (aw_tail + 1) % QUEUE;
            end
            if (wvalid && wready) begin
                for (i = 0; i < B; i = i + 1)
                    if (wstrb[i]) mem[((w_open ? w_addr : aw_addr[aw_head]) + i) % MEM_BYTES] <= wdata[8*i +: 8];
                w_addr <= (w_open ? w_addr : aw_addr[aw_head]) + B;
                w_open <= !wlast;
                if (wlast) begin
                    b_due[b_tail] <= now + LATENCY;
                    b_tail <= (b_tail + 1) % QUEUE;
                end
            end
            aw_count <= aw_count + (awvalid && awready) - (wvalid && wready && !w_open);
            if (!w_open && wvalid && wready) aw_head <= (aw_head + 1) % QUEUE;
            b_count <= b_count + (wvalid && wready && wlast) - (bvalid && bready);
            if (bvalid && bready) b_head <= (b_head + 1) % QUEUE;
        end
    end
endmodule
`default_nettype wire
