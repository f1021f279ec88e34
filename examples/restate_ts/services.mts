// The three TypeScript examples of Perdure's product description (payment, cart, booking saga),
// as written there, served by Restate's own SDK and run on Perdure over Restate's service protocol.
//
// Only the stubs are ours: the external APIs the examples call (inventory, payment, order
// database, email, flight, hotel, car) and one endpoint serving all three services on $PORT
// (the description's payment listens on 9080 alone). Each stub appends a line to $STUB_LOG so a
// test can count from the outside what ran, and $STUB_HANG names a stub call that hangs the first
// time this process makes it (so a test can kill a process inside that step). $CAR_FAILS makes
// the car API refuse terminally.
import * as restate from "@restatedev/restate-sdk";
import { appendFileSync } from "node:fs";

type CartItem = { productId: string; quantity: number };
type TripRequest = { flight: string; hotel: string; car: string };

let hung = false;
function stub(name: string, ...args: unknown[]): Promise<void> {
  if (process.env.STUB_LOG) appendFileSync(process.env.STUB_LOG, `${name} ${JSON.stringify(args)}\n`);
  if (process.env.STUB_HANG === name && !hung) {
    hung = true;
    return new Promise(() => {});
  }
  return Promise.resolve();
}
const inventoryApi = {
  reserve: async (orderId: string) => (await stub("inventory.reserve", orderId), { orderId, reserved: true }),
};
const stripeApi = {
  charge: async (userId: string, amount: number) => (await stub("stripe.charge", userId, amount), { id: `ch_${userId}_${amount}` }),
};
const orderDb = { confirm: async (orderId: string, chargeId: string) => { await stub("orders.confirm", orderId, chargeId); } };
const emailApi = { send: async (userId: string, text: string) => { await stub("email.send", userId, text); } };
const flightApi = {
  book: async (flight: string) => (await stub("flight.book", flight), `fl_${flight}`),
  cancel: async (id: string) => { await stub("flight.cancel", id); },
};
const hotelApi = {
  book: async (hotel: string) => (await stub("hotel.book", hotel), `ho_${hotel}`),
  cancel: async (id: string) => { await stub("hotel.cancel", id); },
};
const carApi = {
  book: async (car: string) => {
    await stub("car.book", car);
    if (process.env.CAR_FAILS) throw new restate.TerminalError(`no car available: ${car}`);
    return `car_${car}`;
  },
};

// ---- services/payment.ts, as in the description ----
const paymentService = restate.service({
  name: "payments",
  handlers: {
    // This handler is durable — if it crashes between steps,
    // it resumes where it left off without re-executing completed steps
    async processPayment(ctx: restate.Context, order: {
      orderId: string;
      userId: string;
      amount: number;
    }) {
      // Step 1: Reserve inventory (durable — won't re-run if already done)
      const reserved = await ctx.run("reserve-inventory", async () => {
        return await inventoryApi.reserve(order.orderId);
      });

      // Step 2: Charge payment
      const charge = await ctx.run("charge-payment", async () => {
        return await stripeApi.charge(order.userId, order.amount);
      });

      // Step 3: Confirm order
      await ctx.run("confirm-order", async () => {
        await orderDb.confirm(order.orderId, charge.id);
      });

      // Step 4: Send notification (won't duplicate even if retried)
      await ctx.run("notify", async () => {
        await emailApi.send(order.userId, "Order confirmed!");
      });

      return { orderId: order.orderId, chargeId: charge.id, status: "completed" };
    },
  },
});

// ---- services/cart.ts, as in the description ----
const cartObject = restate.object({
  name: "cart",
  handlers: {
    // Only one handler runs per cart ID at a time — no race conditions
    async addItem(ctx: restate.ObjectContext, item: { productId: string; quantity: number }) {
      // Get current cart state (durable K/V)
      const cart = (await ctx.get<CartItem[]>("items")) || [];
      cart.push(item);
      ctx.set("items", cart);
      return { items: cart.length };
    },

    async checkout(ctx: restate.ObjectContext) {
      const items = (await ctx.get<CartItem[]>("items")) || [];
      if (items.length === 0) throw new Error("Cart is empty");

      // Process payment durably
      const result = await ctx.serviceClient(paymentService).processPayment({
        orderId: ctx.key,
        items,
      });

      // Clear cart after successful payment
      ctx.clear("items");
      return result;
    },

    async getItems(ctx: restate.ObjectSharedContext) {
      return (await ctx.get<CartItem[]>("items")) || [];
    },
  },
});

// ---- services/booking.ts, as in the description ----
const bookingService = restate.service({
  name: "booking",
  handlers: {
    async bookTrip(ctx: restate.Context, trip: TripRequest) {
      let flightId: string | null = null;
      let hotelId: string | null = null;

      try {
        // Book flight
        flightId = await ctx.run("book-flight", () => flightApi.book(trip.flight));

        // Book hotel
        hotelId = await ctx.run("book-hotel", () => hotelApi.book(trip.hotel));

        // Book car
        const carId = await ctx.run("book-car", () => carApi.book(trip.car));

        return { flightId, hotelId, carId, status: "confirmed" };
      } catch (error) {
        // Compensate: cancel what was already booked
        if (hotelId) await ctx.run("cancel-hotel", () => hotelApi.cancel(hotelId));
        if (flightId) await ctx.run("cancel-flight", () => flightApi.cancel(flightId));
        throw error;
      }
    },
  },
});

restate.endpoint().bind(paymentService).bind(cartObject).bind(bookingService).listen(Number(process.env.PORT ?? 9080));
