/** ASCII bytes that the scanner and the slow paths compare against. */
export const B_QUOTE = 0x22;
export const B_BACKSLASH = 0x5c;
export const B_NL = 0x0a;
